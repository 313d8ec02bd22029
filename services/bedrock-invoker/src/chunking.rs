//! Splitting a transcript that does not fit a model's context, on turn boundaries (then on
//! sentence ends, then on spaces, for a single turn too long on its own). Nothing is dropped:
//! the chunks, joined, are the whole text.

use crate::ratelimit::estimate_tokens;

/// Splits `text` into pieces of at most `budget` estimated tokens.
pub fn split_for_context(text: &str, budget: u32) -> Vec<String> {
    let budget = budget.max(16);
    let mut pieces: Vec<String> = Vec::new();
    for turn in text.split("\n\n").filter(|t| !t.trim().is_empty()) {
        if estimate_tokens(turn) <= budget {
            pieces.push(turn.to_owned());
        } else {
            pieces.extend(split_long(turn, budget));
        }
    }
    // Pack consecutive pieces into chunks.
    let mut chunks: Vec<String> = Vec::new();
    for piece in pieces {
        match chunks.last_mut() {
            Some(last) if estimate_tokens(last) + 1 + estimate_tokens(&piece) <= budget => {
                last.push_str("\n\n");
                last.push_str(&piece);
            }
            _ => chunks.push(piece),
        }
    }
    chunks
}

/// One turn longer than the budget: sentence by sentence, and word by word for a
/// "sentence" that is still too long.
fn split_long(turn: &str, budget: u32) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let max_chars = budget as usize * 4;
    for word in turn.split_whitespace() {
        let extra = if current.is_empty() {
            word.chars().count()
        } else {
            word.chars().count() + 1
        };
        let fits = current.chars().count() + extra <= max_chars;
        let sentence_end =
            current.ends_with(['.', '?', '!']) && current.chars().count() * 2 >= max_chars;
        if (!fits || sentence_end) && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        if word.chars().count() > max_chars {
            // A "word" longer than a whole chunk (no spaces at all): cut it.
            let chars: Vec<char> = word.chars().collect();
            for part in chars.chunks(max_chars) {
                out.push(part.iter().collect());
            }
            continue;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    #[test]
    fn keeps_turns_together_when_they_fit() {
        let text = "A: one two.\n\nB: three four.\n\nA: five six.";
        assert_eq!(split_for_context(text, 1000), vec![text.to_owned()]);
        let chunks = split_for_context(text, 16);
        assert_eq!(words(&chunks.join(" ")), words(text));
    }

    proptest! {
        #[test]
        fn chunks_fit_and_lose_nothing(
            turns in proptest::collection::vec("[a-z]{1,30}( [a-z]{1,12}[.?!]?){0,80}", 1..30),
            budget in 16u32..400,
        ) {
            let text = turns.join("\n\n");
            let chunks = split_for_context(&text, budget);
            for c in &chunks {
                prop_assert!(estimate_tokens(c) <= budget, "chunk of {} > {budget}", estimate_tokens(c));
            }
            let joined = chunks.join("\n\n");
            prop_assert_eq!(words(&joined), words(&text));
        }
    }
}
