//! Which number format CTranslate2 runs the model in (`PODFLOW_WHISPER_COMPUTE_TYPE`), and
//! the pick of the fastest one this CPU supports.
//!
//! CTranslate2 cannot be asked which types a CPU supports without loading a model, so the
//! pick is made by loading: int8 first, then int8_float32, then float32, keeping the first
//! model that loads. A type the CPU lacks is never an error while another one remains.

use std::fmt;

/// The environment variable that forces a compute type.
pub const COMPUTE_TYPE_ENV: &str = "PODFLOW_WHISPER_COMPUTE_TYPE";

/// A CTranslate2 compute type, by its CTranslate2 name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComputeKind {
    Int8,
    Int8Float32,
    Int8Float16,
    Int8Bfloat16,
    Int16,
    Float32,
    Float16,
    Bfloat16,
}

impl ComputeKind {
    const ALL: [ComputeKind; 8] = [
        Self::Int8,
        Self::Int8Float32,
        Self::Int8Float16,
        Self::Int8Bfloat16,
        Self::Int16,
        Self::Float32,
        Self::Float16,
        Self::Bfloat16,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Int8 => "int8",
            Self::Int8Float32 => "int8_float32",
            Self::Int8Float16 => "int8_float16",
            Self::Int8Bfloat16 => "int8_bfloat16",
            Self::Int16 => "int16",
            Self::Float32 => "float32",
            Self::Float16 => "float16",
            Self::Bfloat16 => "bfloat16",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == text)
    }
}

impl fmt::Display for ComputeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The types tried when none is forced, fastest first (int8 took half float32's time here,
/// at a WER cost on AMD: docs/transcription.md); float32 runs anywhere CTranslate2 does.
pub const AUTO_ORDER: [ComputeKind; 3] = [
    ComputeKind::Int8,
    ComputeKind::Int8Float32,
    ComputeKind::Float32,
];

/// What the user asked for: the fastest type that loads, or exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeChoice {
    Auto,
    Exactly(ComputeKind),
}

impl ComputeChoice {
    /// `auto` or a CTranslate2 type name; the error says what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim().to_ascii_lowercase();
        if text.is_empty() || text == "auto" || text == "default" {
            return Ok(Self::Auto);
        }
        ComputeKind::parse(&text).map(Self::Exactly).ok_or_else(|| {
            let names: Vec<&str> = ComputeKind::ALL.iter().map(|k| k.name()).collect();
            format!(
                "{COMPUTE_TYPE_ENV}={text} is not a compute type: use auto (the default), or one of {}",
                names.join(", ")
            )
        })
    }

    /// From `PODFLOW_WHISPER_COMPUTE_TYPE` (unset: auto).
    pub fn from_env() -> Result<Self, String> {
        std::env::var(COMPUTE_TYPE_ENV).map_or(Ok(Self::Auto), |v| Self::parse(&v))
    }

    /// The types to try, in order.
    pub fn candidates(self) -> Vec<ComputeKind> {
        match self {
            Self::Auto => AUTO_ORDER.to_vec(),
            Self::Exactly(kind) => vec![kind],
        }
    }
}

impl fmt::Display for ComputeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Exactly(kind) => write!(f, "{kind}"),
        }
    }
}

/// Is this load error CTranslate2 refusing the compute type on this CPU (so the next type may
/// load), rather than a problem with the model, which no other type would fix?
pub fn is_unsupported_type(error: &str) -> bool {
    // CTranslate2: "Requested int8 compute type, but the target device or backend do not
    // support efficient int8 computation."
    error.contains("compute type") && error.contains("do not support")
}

/// A model loaded in the first compute type that this CPU supports.
#[derive(Debug)]
pub struct Picked<M> {
    pub kind: ComputeKind,
    pub model: M,
    /// The types tried before it, with CTranslate2's reason for each.
    pub refused: Vec<(ComputeKind, String)>,
}

/// Why no model loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickError {
    /// The CPU supports none of the types tried (the text says which, and what to do).
    Unsupported(String),
    /// The model itself failed to load (CTranslate2's words); no other type would help.
    Model(String),
}

/// Tries `choice`'s types in order with `load` and keeps the first model that loads. Moves
/// on only when a type is refused as unsupported; any other error is the model's and ends
/// the search with that error.
pub fn pick<M>(
    choice: ComputeChoice,
    mut load: impl FnMut(ComputeKind) -> Result<M, String>,
) -> Result<Picked<M>, PickError> {
    let mut refused = Vec::new();
    for kind in choice.candidates() {
        match load(kind) {
            Ok(model) => {
                return Ok(Picked {
                    kind,
                    model,
                    refused,
                });
            }
            Err(e) if is_unsupported_type(&e) => refused.push((kind, e)),
            Err(e) => return Err(PickError::Model(e)),
        }
    }
    let tried: Vec<&str> = refused.iter().map(|(k, _)| k.name()).collect();
    let reason = refused.last().map_or("", |(_, e)| e.as_str());
    Err(PickError::Unsupported(match choice {
        ComputeChoice::Auto => format!(
            "this CPU supports none of CTranslate2's compute types {} ({reason})",
            tried.join(", ")
        ),
        ComputeChoice::Exactly(kind) => format!(
            "CTranslate2 cannot run {kind} on this CPU ({reason}); unset {COMPUTE_TYPE_ENV} to let podflow pick the fastest type that works"
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(kind: ComputeKind) -> String {
        format!(
            "Requested {kind} compute type, but the target device or backend do not support efficient {kind} computation."
        )
    }

    #[test]
    fn auto_takes_int8_where_it_loads() {
        let picked = pick(ComputeChoice::Auto, Ok::<_, String>).expect("int8 loads");
        assert_eq!(picked.kind, ComputeKind::Int8);
        assert!(picked.refused.is_empty());
    }

    #[test]
    fn auto_moves_down_the_list_when_a_type_is_refused() {
        let mut tried = Vec::new();
        let picked = pick(ComputeChoice::Auto, |k| {
            tried.push(k);
            if k == ComputeKind::Float32 {
                Ok("model")
            } else {
                Err(refusal(k))
            }
        })
        .expect("float32 loads");
        assert_eq!(picked.kind, ComputeKind::Float32);
        assert_eq!(tried, AUTO_ORDER.to_vec());
        assert_eq!(picked.refused.len(), 2);
        assert_eq!(picked.refused[0].0, ComputeKind::Int8);
    }

    #[test]
    fn a_broken_model_is_not_retried_in_other_types() {
        let mut calls = 0;
        let err = pick(ComputeChoice::Auto, |_| {
            calls += 1;
            Err::<(), _>("Unable to open file 'model.bin' in model '/x'".to_owned())
        })
        .expect_err("the model is broken");
        assert_eq!(calls, 1);
        assert!(
            matches!(&err, PickError::Model(e) if e.contains("model.bin")),
            "{err:?}"
        );
    }

    #[test]
    fn when_every_type_is_refused_the_error_names_them() {
        let err = pick(ComputeChoice::Auto, |k| Err::<(), _>(refusal(k))).expect_err("none");
        assert!(
            matches!(&err, PickError::Unsupported(e) if e.contains("int8, int8_float32, float32")),
            "{err:?}"
        );
    }

    #[test]
    fn a_forced_type_is_the_only_one_tried_and_its_refusal_says_how_to_undo_it() {
        let mut tried = Vec::new();
        let err = pick(ComputeChoice::Exactly(ComputeKind::Float16), |k| {
            tried.push(k);
            Err::<(), _>(refusal(k))
        })
        .expect_err("float16 refused");
        assert_eq!(tried, vec![ComputeKind::Float16]);
        let PickError::Unsupported(text) = err else {
            panic!("a refused type is not a model error: {err:?}");
        };
        assert!(text.contains("cannot run float16"), "{text}");
        assert!(text.contains(COMPUTE_TYPE_ENV), "{text}");
    }

    #[test]
    fn choices_parse_by_name_and_reject_the_rest_in_words() {
        assert_eq!(
            ComputeChoice::parse("").expect("empty"),
            ComputeChoice::Auto
        );
        assert_eq!(
            ComputeChoice::parse("AUTO").expect("auto"),
            ComputeChoice::Auto
        );
        assert_eq!(
            ComputeChoice::parse("int8_float32").expect("int8_float32"),
            ComputeChoice::Exactly(ComputeKind::Int8Float32)
        );
        let err = ComputeChoice::parse("int4").expect_err("int4 is not a type");
        assert!(err.contains("int4") && err.contains("float32"), "{err}");
        for kind in ComputeKind::ALL {
            assert_eq!(
                ComputeChoice::parse(kind.name()).expect("own name"),
                ComputeChoice::Exactly(kind)
            );
        }
    }
}
