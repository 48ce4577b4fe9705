//! Search keys that fold Turkish (and other Latin) text the way people search it.
//!
//! The SQLite bundled with sqlx has no ICU, and `LOWER()` on either backend would turn `I`
//! into `i` (wrong in Turkish, where it is `ı`) and leave `İ` alone. So the engine stores
//! folded keys and folds the query the same way: lower-case, Turkish dotted/dotless i both
//! become `i`, diacritics are dropped (`ş`→`s`, `ğ`→`g`, `ç`→`c`, `ö`→`o`, `ü`→`u`), and
//! runs of spaces and punctuation become one space. "IŞIK", "ışık" and "Isik" all fold to
//! "isik"; "Çağrı Öztürk" to "cagri ozturk".

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Folds `text` for search and sorting.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        let mapped: &str = match c {
            'İ' | 'I' | 'ı' | 'i' => "i",
            'ß' => "ss",
            'Æ' | 'æ' => "ae",
            'Ø' | 'ø' => "o",
            'Œ' | 'œ' => "oe",
            'Đ' | 'đ' => "d",
            'Ł' | 'ł' => "l",
            _ => "",
        };
        if !mapped.is_empty() {
            push_word(&mut out, &mut pending_space, mapped.chars());
            continue;
        }
        if c.is_alphanumeric() || c == '@' || c == '.' && !out.is_empty() && !pending_space {
            let base = c
                .nfkd()
                .filter(|d| !is_combining_mark(*d))
                .flat_map(char::to_lowercase);
            push_word(&mut out, &mut pending_space, base);
        } else {
            pending_space = true;
        }
    }
    out
}

fn push_word(out: &mut String, pending_space: &mut bool, chars: impl Iterator<Item = char>) {
    if *pending_space && !out.is_empty() {
        out.push(' ');
    }
    *pending_space = false;
    out.extend(chars);
}

/// The digits of `text` (for phone search: `0532 123 45 67` → `05321234567`).
pub fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// Splits a search query into folded terms; a term that is mostly digits (a phone
/// fragment such as `0532 123`) keeps only its digits and joins with neighbouring
/// digit groups, so `0532 123 45` matches `05321234567`.
pub fn query_terms(query: &str) -> Vec<String> {
    let folded = fold(query);
    let mut terms: Vec<String> = Vec::new();
    let mut digit_run = String::new();
    for word in folded.split(' ').filter(|w| !w.is_empty()) {
        let word_digits = digits(word);
        if !word_digits.is_empty()
            && word_digits.len() * 2 >= word.chars().count()
            && !word.contains('@')
        {
            digit_run.push_str(&word_digits);
            continue;
        }
        if !digit_run.is_empty() {
            terms.push(std::mem::take(&mut digit_run));
        }
        terms.push(word.to_string());
    }
    if !digit_run.is_empty() {
        terms.push(digit_run);
    }
    terms.truncate(8);
    terms
}

/// Escapes `%`, `_` and the escape character itself for a `LIKE … ESCAPE '\'` pattern.
pub fn like_escape(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turkish_letters_fold_both_ways() {
        assert_eq!(fold("IŞIK"), "isik");
        assert_eq!(fold("ışık"), "isik");
        assert_eq!(fold("İstanbul"), "istanbul");
        assert_eq!(fold("Çağrı Öztürk"), "cagri ozturk");
        assert_eq!(fold("  Ayşe   GÜLER-Yılmaz "), "ayse guler yilmaz");
        assert_eq!(fold("ĞğŞşÜüÖöÇç"), "ggssuuoocc");
    }

    #[test]
    fn emails_keep_their_shape() {
        assert_eq!(fold("Ayse.Yilmaz@Örnek.com.tr"), "ayse.yilmaz@ornek.com.tr");
    }

    #[test]
    fn query_terms_join_phone_fragments() {
        assert_eq!(query_terms("0532 123 45"), vec!["053212345"]);
        assert_eq!(query_terms("Ayşe 532"), vec!["ayse", "532"]);
        assert_eq!(query_terms("ali@x.com"), vec!["ali@x.com"]);
        assert!(query_terms("  ,, ").is_empty());
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape("50%_a\\"), "50\\%\\_a\\\\");
    }

    #[test]
    fn folding_never_panics_on_odd_input() {
        for s in ["", "\u{0}", "ﬁ", "𝔘𝔫𝔦", "İ̇", "👍🏽", "a\u{301}"] {
            let _ = fold(s);
            let _ = query_terms(s);
        }
        assert_eq!(fold("ﬁle"), "file");
        assert_eq!(fold("a\u{301}"), "a");
    }
}
