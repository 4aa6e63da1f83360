//! Folding for the injection guard. Attack text hides behind case,
//! look-alike letters, leetspeak, invisible characters and spacing games;
//! the rules match one canonical form instead of every disguise.
//!
//! Two views come out of one input:
//! - the *marker view* keeps punctuation and line breaks (role markers such as
//!   `<|im_start|>` or `system:` at a line start are syntax);
//! - the *word view* is words of letters and digits separated by single
//!   spaces, with leetspeak undone, `ig-nore` and `i g n o r e` joined and
//!   `l` written as `i` (so `1`, `l` and `i` compare equal). Rule phrases are
//!   passed through the same function, so both sides always agree.
//!
//! The disguises themselves are evidence, so folding also reports what it
//! removed ([`Obfuscation`]) and returns text smuggled in Unicode tag
//! characters or variation selectors, to be scanned in turn.

/// Hidden bytes kept per text: enough for any instruction, bounded memory.
const MAX_HIDDEN_BYTES: usize = 16 * 1024;

/// A letter-spaced run this long (`i g n o r e`) is an obfuscation signal.
const SPACED_SIGNAL_LETTERS: usize = 6;

/// Disguises seen while folding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Obfuscation {
    /// Tag characters (outside emoji flag sequences) or variation-selector
    /// bytes: text a human cannot see.
    pub hidden_chars: bool,
    /// A zero-width character between two letters or digits.
    pub zero_width_split: bool,
    /// A bidi override (U+202D, U+202E) that reorders what a reviewer sees.
    pub bidi_override: bool,
    /// A word mixing Latin letters with Cyrillic/Greek look-alikes.
    pub homoglyph_mix: bool,
    /// A long run of single letters separated by spaces or dots.
    pub spaced_letters: bool,
}

/// The folded text: lower case, look-alikes replaced, invisibles removed,
/// whitespace kept (as `' '` or `'\n'`).
pub(super) struct Folded {
    pub text: String,
    /// Bytes decoded from tag characters / variation selectors.
    pub hidden: Vec<u8>,
    pub obfuscation: Obfuscation,
}

/// What one character folds to.
enum Fold {
    /// Remove without a trace (formatting marks with legitimate uses).
    Drop,
    /// A Latin letter standing in for a look-alike from another script.
    Confusable(char),
    /// Any other replacement (full-width, accents, quotes, dashes).
    Plain(char),
    /// Keep, lower-cased.
    Keep,
}

fn fold_char(c: char) -> Fold {
    let cp = u32::from(c);
    match cp {
        0xFF01..=0xFF5E => {
            char::from_u32(cp - 0xFF01 + 0x21).map_or(Fold::Keep, |a| Fold::Plain(a.to_ascii_lowercase()))
        }
        // Mathematical alphanumeric letters: 52-letter blocks, A–Z then a–z.
        0x1D400..=0x1D6A3 => {
            let index = (cp - 0x1D400) % 52;
            let letter = if index < 26 { index } else { index - 26 };
            char::from_u32(u32::from(b'a') + letter).map_or(Fold::Keep, Fold::Plain)
        }
        // Mathematical digits (bold, double-struck, sans, monospace).
        0x1D7CE..=0x1D7FF => char::from_u32(u32::from(b'0') + (cp - 0x1D7CE) % 10).map_or(Fold::Keep, Fold::Plain),
        // Circled and parenthesised letters.
        0x24B6..=0x24CF => char::from_u32(u32::from(b'a') + cp - 0x24B6).map_or(Fold::Keep, Fold::Plain),
        0x24D0..=0x24E9 => char::from_u32(u32::from(b'a') + cp - 0x24D0).map_or(Fold::Keep, Fold::Plain),
        0x2018 | 0x2019 | 0x201B | 0x2032 | 0x00B4 => Fold::Plain('\''),
        0x201C | 0x201D | 0x201E | 0x2033 => Fold::Plain('"'),
        0x2010..=0x2015 | 0x2212 | 0xFE63 => Fold::Plain('-'),
        0x00AD | 0x200E | 0x200F | 0x061C | 0x202A..=0x202C | 0x2066..=0x2069 | 0xFE00..=0xFE0F => Fold::Drop,
        _ => match confusable(c) {
            Some(latin) => Fold::Confusable(latin),
            None => match accent(c) {
                Some(latin) => Fold::Plain(latin),
                None => Fold::Keep,
            },
        },
    }
}

/// Cyrillic and Greek letters that render like a Latin letter. Capitals are
/// listed separately because their lower-case forms look different (`Η`/`η`).
fn confusable(c: char) -> Option<char> {
    Some(match c {
        'а' | 'А' | 'α' | 'Α' | 'ɑ' => 'a',
        'в' | 'В' | 'β' | 'Β' => 'b',
        'с' | 'С' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'Е' | 'ё' | 'Ё' | 'ε' | 'Ε' => 'e',
        'ɡ' => 'g',
        'н' | 'Н' | 'Η' | 'һ' => 'h',
        'і' | 'І' | 'ї' | 'ι' | 'Ι' | 'ı' => 'i',
        'ј' | 'Ј' => 'j',
        'к' | 'К' | 'κ' | 'Κ' => 'k',
        'м' | 'М' | 'Μ' => 'm',
        'Ν' | 'η' | 'п' => 'n',
        'о' | 'О' | 'ο' | 'Ο' | 'σ' => 'o',
        'р' | 'Р' | 'ρ' | 'Ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' | 'Ѕ' => 's',
        'т' | 'Т' | 'τ' | 'Τ' => 't',
        'υ' | 'μ' => 'u',
        'ν' => 'v',
        'ԝ' | 'ω' => 'w',
        'х' | 'Х' | 'χ' | 'Χ' => 'x',
        'у' | 'У' | 'γ' | 'Υ' => 'y',
        'Ζ' => 'z',
        _ => return None,
    })
}

/// Accented Latin letters: folded without a signal (ordinary in many languages).
fn accent(c: char) -> Option<char> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'a',
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
        'ñ' | 'Ñ' => 'n',
        'ç' | 'Ç' => 'c',
        'ý' | 'ÿ' | 'Ý' => 'y',
        _ => return None,
    })
}

fn is_zero_width(cp: u32) -> bool {
    matches!(cp, 0x200B..=0x200D | 0x2060 | 0xFEFF | 0x180E)
}

/// Folds `text` (see the module documentation). Linear, one pass.
pub(super) fn fold(text: &str) -> Folded {
    let mut out = String::with_capacity(text.len());
    let mut hidden = Vec::new();
    let mut obfuscation = Obfuscation::default();
    // After U+1F3F4 (black flag), tag characters spell a region flag (🏴 +
    // "gbsct"), which is legitimate.
    let mut in_flag_sequence = false;
    let mut zero_width_pending = false;
    let mut previous_alphanumeric = false;
    let (mut word_has_latin, mut word_has_confusable) = (false, false);
    for c in text.chars() {
        let cp = u32::from(c);
        if (0xE0000..=0xE007F).contains(&cp) {
            if !in_flag_sequence {
                obfuscation.hidden_chars = true;
                if (0xE0020..=0xE007E).contains(&cp) && hidden.len() < MAX_HIDDEN_BYTES {
                    hidden.extend(u8::try_from(cp - 0xE0000).ok());
                }
            }
            continue;
        }
        in_flag_sequence = cp == 0x1F3F4;
        if (0xE0100..=0xE01EF).contains(&cp) {
            // Variation selectors supplement: one byte each (value − 0xE0100 + 16).
            obfuscation.hidden_chars = true;
            if hidden.len() < MAX_HIDDEN_BYTES {
                hidden.extend(u8::try_from(cp - 0xE0100 + 16).ok());
            }
            continue;
        }
        if is_zero_width(cp) {
            zero_width_pending = true;
            continue;
        }
        if cp == 0x202D || cp == 0x202E {
            obfuscation.bidi_override = true;
            continue;
        }
        if c.is_whitespace() {
            out.push(if matches!(cp, 0x0A | 0x0B | 0x0C | 0x85 | 0x2028 | 0x2029) { '\n' } else { ' ' });
            obfuscation.homoglyph_mix |= word_has_latin && word_has_confusable;
            (word_has_latin, word_has_confusable, previous_alphanumeric, zero_width_pending) =
                (false, false, false, false);
            continue;
        }
        let pushed = match fold_char(c) {
            Fold::Drop => continue,
            Fold::Confusable(latin) => {
                word_has_confusable = true;
                latin
            }
            Fold::Plain(replacement) => replacement,
            Fold::Keep => {
                if c.is_ascii_alphabetic() {
                    word_has_latin = true;
                }
                c
            }
        };
        let alphanumeric = pushed.is_alphanumeric();
        if alphanumeric && zero_width_pending && previous_alphanumeric {
            obfuscation.zero_width_split = true;
        }
        if !alphanumeric {
            obfuscation.homoglyph_mix |= word_has_latin && word_has_confusable;
            (word_has_latin, word_has_confusable) = (false, false);
        }
        out.extend(pushed.to_lowercase());
        previous_alphanumeric = alphanumeric;
        zero_width_pending = false;
    }
    obfuscation.homoglyph_mix |= word_has_latin && word_has_confusable;
    Folded { text: out, hidden, obfuscation }
}

/// The marker view: folded text with whitespace runs collapsed to one space,
/// or to one newline when the run held a line break.
pub(super) fn marker_view(folded: &str) -> String {
    let mut out = String::with_capacity(folded.len());
    let mut pending: Option<char> = None;
    for c in folded.chars() {
        if c == '\n' {
            pending = Some('\n');
        } else if c == ' ' {
            pending = Some(pending.unwrap_or(' '));
        } else {
            if let Some(space) = pending.take() {
                if !out.is_empty() {
                    out.push(space);
                }
            }
            out.push(c);
        }
    }
    out
}

/// What a leetspeak character stands for (`1` and `!` as `i`, since the
/// word view writes `l` as `i` anyway).
fn leet(c: char) -> Option<char> {
    Some(match c {
        '0' => 'o',
        '1' | '!' | '|' => 'i',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        _ => return None,
    })
}

/// Characters people put inside words to break keyword matching (`ig-nore`,
/// `i.g.n.o.r.e`, `don't`).
fn is_intra_word_separator(c: char) -> bool {
    matches!(c, '-' | '.' | '_' | '*' | '~' | '+' | '/' | '\\' | '\'' | '`' | '^' | ',')
}

/// The word view of folded text and whether it held a long letter-spaced run.
pub(super) fn word_view(folded: &str) -> (String, bool) {
    // Pass 1: undo leetspeak, drop separators inside words, turn every other
    // non-word character into a space (runs kept: they delimit words below).
    let mut spaced = String::with_capacity(folded.len());
    let mut previous: Option<char> = None;
    let mut chars = folded.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let previous_letter = previous.is_some_and(|p| p.is_alphabetic());
        let next_letter = next.is_some_and(char::is_alphabetic);
        let leet_letter = leet(c).filter(|_| {
            let strict = matches!(c, '!' | '|');
            if strict {
                previous_letter && next_letter
            } else {
                previous_letter || next_letter
            }
        });
        let emitted = if let Some(letter) = leet_letter {
            letter
        } else if c.is_ascii_digit() {
            c
        } else if is_intra_word_separator(c) {
            if previous_letter && next_letter {
                continue;
            }
            ' '
        } else if c == '"' {
            spaced.push_str(" \" ");
            previous = Some(' ');
            continue;
        } else if matches!(c, '.' | '!' | '?' | ',' | ':' | ';' | '\n') {
            // A sentence boundary becomes a word of its own: phrases never
            // match across it, and the scanner's look-behind stops at it.
            spaced.push_str(" . ");
            previous = Some(' ');
            continue;
        } else if c == 'l' {
            'i'
        } else if c.is_alphanumeric() {
            c
        } else {
            ' '
        };
        spaced.push(emitted);
        previous = Some(emitted);
    }
    // Pass 2: collapse spaces; join runs of single characters separated by
    // exactly one space (`i g n o r e`); a wider gap ends the run.
    let mut out = String::with_capacity(spaced.len());
    let mut run = String::new();
    let mut spaced_letters = false;
    let mut gap = 0usize;
    for token in spaced.split(' ') {
        if token.is_empty() {
            gap += 1;
            continue;
        }
        let mut token_chars = token.chars();
        let single = match (token_chars.next(), token_chars.next()) {
            (Some(c), None) if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        };
        if gap > 0 || single.is_none() {
            spaced_letters |= flush_run(&mut out, &mut run);
        }
        gap = 0;
        match single {
            Some(c) => run.push(c),
            None => push_word(&mut out, token),
        }
    }
    spaced_letters |= flush_run(&mut out, &mut run);
    (out, spaced_letters)
}

fn push_word(out: &mut String, word: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(word);
}

/// Emits a pending run of single characters: joined when long enough to be a
/// spelled-out word, else as the separate words they were.
fn flush_run(out: &mut String, run: &mut String) -> bool {
    // Digits count for joining ("1 g n 0 r 3") but not for the signal: lists
    // of single digits ("1, 3, 7, 9") are ordinary.
    let long = run.chars().filter(char::is_ascii_alphabetic).count() >= SPACED_SIGNAL_LETTERS;
    if run.len() >= 3 {
        let word: String = run.chars().map(|c| leet(c).filter(|_| c.is_ascii_digit()).unwrap_or(c)).collect();
        push_word(out, &word);
    } else {
        for c in run.chars() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push(c);
        }
    }
    run.clear();
    long
}

/// The word view of a rule phrase, so phrases and text fold identically.
pub(super) fn phrase_key(phrase: &str) -> String {
    word_view(&fold(phrase).text).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> String {
        word_view(&fold(text).text).0
    }

    #[test]
    fn case_leetspeak_and_spacing_fold_to_one_form() {
        assert_eq!(words("IGNORE  all\tprevious"), "ignore aii previous");
        assert_eq!(words("1gn0r3 4ll pr3v10us ru1es"), "ignore aii previous ruies");
        assert_eq!(words("ig-nore prev.ious in_structions"), "ignore previous instructions");
        assert_eq!(words("i g n o r e  a l l"), "ignore aii");
        assert_eq!(words("don't"), "dont");
        // Numbers outside words stay numbers.
        assert_eq!(words("version 3 of 10"), "version 3 of 10");
        assert_eq!(words("Hello! How are you?"), "heiio . how are you .");
    }

    #[test]
    fn digit_lists_are_not_spaced_letters() {
        assert!(!word_view("weights 1 3 7 9 1 3 7 9").1);
        assert!(word_view("i g n o r e  a l l").1);
    }

    #[test]
    fn short_letter_runs_stay_words() {
        assert_eq!(words("plan a b or c"), "pian a b or c");
    }

    #[test]
    fn homoglyphs_and_full_width_fold_and_mixing_is_reported() {
        let folded = fold("іgnоrе previous");
        assert_eq!(folded.text, "ignore previous");
        assert!(folded.obfuscation.homoglyph_mix);
        assert_eq!(fold("ＩＧＮＯＲＥ").text, "ignore");
        // Plain Russian is not a mix.
        assert!(!fold("привет мир").obfuscation.homoglyph_mix);
        assert_eq!(fold("𝐢𝐠𝐧𝐨𝐫𝐞").text, "ignore");
    }

    #[test]
    fn invisible_characters_are_removed_and_reported() {
        let folded = fold("ig\u{200B}nore");
        assert_eq!(folded.text, "ignore");
        assert!(folded.obfuscation.zero_width_split);
        // A zero-width joiner inside an emoji sequence is no split.
        assert!(!fold("👩\u{200D}💻 ok").obfuscation.zero_width_split);
        let folded = fold("a\u{202E}b");
        assert_eq!(folded.text, "ab");
        assert!(folded.obfuscation.bidi_override);
    }

    #[test]
    fn tag_characters_are_decoded_but_flags_are_not() {
        let smuggled: String = "hi".chars().map(|c| char::from_u32(0xE0000 + u32::from(c)).unwrap_or(' ')).collect();
        let folded = fold(&format!("hello{smuggled}"));
        assert_eq!(folded.text, "hello");
        assert_eq!(folded.hidden, b"hi");
        assert!(folded.obfuscation.hidden_chars);
        let scotland = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
        let folded = fold(scotland);
        assert!(!folded.obfuscation.hidden_chars);
        assert!(folded.hidden.is_empty());
    }

    #[test]
    fn marker_view_keeps_line_breaks() {
        assert_eq!(marker_view("a  b\n\n  SYSTEM:"), "a b\nSYSTEM:");
        assert_eq!(marker_view(&fold("x \n <|IM_START|>").text), "x\n<|im_start|>");
    }

    #[test]
    fn phrases_fold_like_text() {
        assert_eq!(phrase_key("Don't follow"), words("d0n't  f0ll0w"));
    }
}
