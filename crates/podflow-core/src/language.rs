//! The language an episode is transcribed in: `auto` (the engine identifies it) or an ISO
//! 639-1 code the user gives. One setting for the local engines and the CLI; Amazon
//! Transcribe's regional codes (`de-DE`) are mapped from it in `podflow-aws`.

use std::{fmt, str::FromStr};

/// What the user asked for: identify the language, or transcribe in this one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Language {
    /// The engine identifies the language from the audio (an English-only model: English).
    #[default]
    Auto,
    /// A lowercase ISO 639-1 code (`de`), checked against [`ISO_639_1`].
    Code(String),
}

/// Why a language setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LanguageError {
    #[error(
        "language `{0}`: give `auto` or a two-letter ISO 639-1 code such as en, de or es (a region is not needed: `{1}`)"
    )]
    Regional(String, String),
    #[error("language `{0}`: give `auto` or a two-letter ISO 639-1 code such as en, de or es")]
    NotACode(String),
    #[error(
        "language `{0}` is not an ISO 639-1 code: give `auto` or a two-letter code such as en, de or es"
    )]
    Unknown(String),
}

impl FromStr for Language {
    type Err = LanguageError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let code = text.trim().to_ascii_lowercase();
        if code == "auto" {
            return Ok(Self::Auto);
        }
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_lowercase()) {
            // `de-DE` or `pt_BR`: say what to write instead.
            let base = code.split(['-', '_']).next().unwrap_or("");
            if base.len() == 2 && name(base).is_some() {
                return Err(LanguageError::Regional(text.to_owned(), base.to_owned()));
            }
            return Err(LanguageError::NotACode(text.to_owned()));
        }
        if name(&code).is_none() {
            return Err(LanguageError::Unknown(text.to_owned()));
        }
        Ok(Self::Code(code))
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Code(code) => f.write_str(code),
        }
    }
}

/// The English name of an ISO 639-1 code (`de` → German), for prompts and messages.
pub fn name(code: &str) -> Option<&'static str> {
    ISO_639_1
        .binary_search_by(|(c, _)| (*c).cmp(code))
        .ok()
        .map(|i| ISO_639_1[i].1)
}

/// A transcript's language for a prompt: `German` for `de`, the code itself when it is not
/// an ISO 639-1 code (Whisper also names a few languages by longer codes, `haw`, `yue`).
pub fn display_name(code: &str) -> String {
    let base = code.split(['-', '_']).next().unwrap_or(code);
    name(&base.to_ascii_lowercase()).map_or_else(|| code.to_owned(), str::to_owned)
}

/// ISO 639-1: every two-letter code and its English name, sorted by code.
pub const ISO_639_1: &[(&str, &str)] = &[
    ("aa", "Afar"),
    ("ab", "Abkhazian"),
    ("ae", "Avestan"),
    ("af", "Afrikaans"),
    ("ak", "Akan"),
    ("am", "Amharic"),
    ("an", "Aragonese"),
    ("ar", "Arabic"),
    ("as", "Assamese"),
    ("av", "Avaric"),
    ("ay", "Aymara"),
    ("az", "Azerbaijani"),
    ("ba", "Bashkir"),
    ("be", "Belarusian"),
    ("bg", "Bulgarian"),
    ("bi", "Bislama"),
    ("bm", "Bambara"),
    ("bn", "Bengali"),
    ("bo", "Tibetan"),
    ("br", "Breton"),
    ("bs", "Bosnian"),
    ("ca", "Catalan"),
    ("ce", "Chechen"),
    ("ch", "Chamorro"),
    ("co", "Corsican"),
    ("cr", "Cree"),
    ("cs", "Czech"),
    ("cu", "Church Slavic"),
    ("cv", "Chuvash"),
    ("cy", "Welsh"),
    ("da", "Danish"),
    ("de", "German"),
    ("dv", "Divehi"),
    ("dz", "Dzongkha"),
    ("ee", "Ewe"),
    ("el", "Greek"),
    ("en", "English"),
    ("eo", "Esperanto"),
    ("es", "Spanish"),
    ("et", "Estonian"),
    ("eu", "Basque"),
    ("fa", "Persian"),
    ("ff", "Fulah"),
    ("fi", "Finnish"),
    ("fj", "Fijian"),
    ("fo", "Faroese"),
    ("fr", "French"),
    ("fy", "Western Frisian"),
    ("ga", "Irish"),
    ("gd", "Scottish Gaelic"),
    ("gl", "Galician"),
    ("gn", "Guarani"),
    ("gu", "Gujarati"),
    ("gv", "Manx"),
    ("ha", "Hausa"),
    ("he", "Hebrew"),
    ("hi", "Hindi"),
    ("ho", "Hiri Motu"),
    ("hr", "Croatian"),
    ("ht", "Haitian Creole"),
    ("hu", "Hungarian"),
    ("hy", "Armenian"),
    ("hz", "Herero"),
    ("ia", "Interlingua"),
    ("id", "Indonesian"),
    ("ie", "Interlingue"),
    ("ig", "Igbo"),
    ("ii", "Sichuan Yi"),
    ("ik", "Inupiaq"),
    ("io", "Ido"),
    ("is", "Icelandic"),
    ("it", "Italian"),
    ("iu", "Inuktitut"),
    ("ja", "Japanese"),
    ("jv", "Javanese"),
    ("ka", "Georgian"),
    ("kg", "Kongo"),
    ("ki", "Kikuyu"),
    ("kj", "Kuanyama"),
    ("kk", "Kazakh"),
    ("kl", "Kalaallisut"),
    ("km", "Khmer"),
    ("kn", "Kannada"),
    ("ko", "Korean"),
    ("kr", "Kanuri"),
    ("ks", "Kashmiri"),
    ("ku", "Kurdish"),
    ("kv", "Komi"),
    ("kw", "Cornish"),
    ("ky", "Kyrgyz"),
    ("la", "Latin"),
    ("lb", "Luxembourgish"),
    ("lg", "Ganda"),
    ("li", "Limburgish"),
    ("ln", "Lingala"),
    ("lo", "Lao"),
    ("lt", "Lithuanian"),
    ("lu", "Luba-Katanga"),
    ("lv", "Latvian"),
    ("mg", "Malagasy"),
    ("mh", "Marshallese"),
    ("mi", "Maori"),
    ("mk", "Macedonian"),
    ("ml", "Malayalam"),
    ("mn", "Mongolian"),
    ("mr", "Marathi"),
    ("ms", "Malay"),
    ("mt", "Maltese"),
    ("my", "Burmese"),
    ("na", "Nauru"),
    ("nb", "Norwegian Bokmål"),
    ("nd", "North Ndebele"),
    ("ne", "Nepali"),
    ("ng", "Ndonga"),
    ("nl", "Dutch"),
    ("nn", "Norwegian Nynorsk"),
    ("no", "Norwegian"),
    ("nr", "South Ndebele"),
    ("nv", "Navajo"),
    ("ny", "Chichewa"),
    ("oc", "Occitan"),
    ("oj", "Ojibwa"),
    ("om", "Oromo"),
    ("or", "Odia"),
    ("os", "Ossetian"),
    ("pa", "Punjabi"),
    ("pi", "Pali"),
    ("pl", "Polish"),
    ("ps", "Pashto"),
    ("pt", "Portuguese"),
    ("qu", "Quechua"),
    ("rm", "Romansh"),
    ("rn", "Rundi"),
    ("ro", "Romanian"),
    ("ru", "Russian"),
    ("rw", "Kinyarwanda"),
    ("sa", "Sanskrit"),
    ("sc", "Sardinian"),
    ("sd", "Sindhi"),
    ("se", "Northern Sami"),
    ("sg", "Sango"),
    ("si", "Sinhala"),
    ("sk", "Slovak"),
    ("sl", "Slovenian"),
    ("sm", "Samoan"),
    ("sn", "Shona"),
    ("so", "Somali"),
    ("sq", "Albanian"),
    ("sr", "Serbian"),
    ("ss", "Swati"),
    ("st", "Southern Sotho"),
    ("su", "Sundanese"),
    ("sv", "Swedish"),
    ("sw", "Swahili"),
    ("ta", "Tamil"),
    ("te", "Telugu"),
    ("tg", "Tajik"),
    ("th", "Thai"),
    ("ti", "Tigrinya"),
    ("tk", "Turkmen"),
    ("tl", "Tagalog"),
    ("tn", "Tswana"),
    ("to", "Tonga"),
    ("tr", "Turkish"),
    ("ts", "Tsonga"),
    ("tt", "Tatar"),
    ("tw", "Twi"),
    ("ty", "Tahitian"),
    ("ug", "Uyghur"),
    ("uk", "Ukrainian"),
    ("ur", "Urdu"),
    ("uz", "Uzbek"),
    ("ve", "Venda"),
    ("vi", "Vietnamese"),
    ("vo", "Volapük"),
    ("wa", "Walloon"),
    ("wo", "Wolof"),
    ("xh", "Xhosa"),
    ("yi", "Yiddish"),
    ("yo", "Yoruba"),
    ("za", "Zhuang"),
    ("zh", "Chinese"),
    ("zu", "Zulu"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_and_two_letter_codes_parse_in_any_case() {
        assert_eq!("auto".parse(), Ok(Language::Auto));
        assert_eq!(" AUTO ".parse(), Ok(Language::Auto));
        assert_eq!("de".parse(), Ok(Language::Code("de".into())));
        assert_eq!("ES".parse(), Ok(Language::Code("es".into())));
        assert_eq!(Language::Code("de".into()).to_string(), "de");
        assert_eq!(Language::default().to_string(), "auto");
    }

    #[test]
    fn anything_else_is_refused_with_what_to_write() {
        let err = |t: &str| t.parse::<Language>().expect_err(t).to_string();
        // A region: the message names the code to use instead.
        assert!(
            err("de-DE").contains("region is not needed: `de`"),
            "{}",
            err("de-DE")
        );
        assert!(err("pt_BR").contains("`pt`"));
        // Not two letters, or two letters that name no language.
        for bad in ["", "german", "d", "d3", "deu", "ü1"] {
            assert!(
                err(bad).contains("two-letter ISO 639-1 code"),
                "{bad}: {}",
                err(bad)
            );
        }
        assert!(err("xx").contains("`xx` is not an ISO 639-1 code"));
        assert!(err("qq-QQ").contains("give `auto`"));
    }

    #[test]
    fn the_code_table_is_sorted_unique_and_named() {
        // `name` searches it by halves: it must stay sorted.
        assert!(ISO_639_1.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(ISO_639_1.iter().all(|(c, n)| c.len() == 2 && !n.is_empty()));
        assert_eq!(ISO_639_1.len(), 183);
        assert_eq!(name("de"), Some("German"));
        assert_eq!(name("zz"), None);
        assert_eq!(display_name("de-DE"), "German");
        assert_eq!(display_name("haw"), "haw");
    }
}
