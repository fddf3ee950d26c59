//! CSV for downloads a customer opens in a spreadsheet (RFC 4180): every
//! cell quoted, `"` doubled, rows ended with CRLF, and cells a spreadsheet
//! would take for a formula defused.
//!
//! A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
//! gets a leading `'`, so a spreadsheet shows it as text instead of
//! evaluating it (`=HYPERLINK(...)` typed as a username stays text). A
//! cell that already starts with `'` gets one too, so the rule reverses
//! without doubt: a cell that starts with `'` had one `'` put in front.

/// The characters a spreadsheet may start a formula with.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One cell, defused and quoted.
pub fn cell(value: &str) -> String {
    let guard = value
        .chars()
        .next()
        .is_some_and(|c| FORMULA_START.contains(&c) || c == '\'');
    let mut out = String::with_capacity(value.len() + 3);
    out.push('"');
    if guard {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One row: the cells, comma-separated, ended with CRLF.
pub fn row<S: AsRef<str>>(cells: &[S]) -> String {
    let mut out = cells
        .iter()
        .map(|c| cell(c.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_cells_are_quoted_as_they_are() {
        assert_eq!(cell("request.approved"), "\"request.approved\"");
        assert_eq!(cell(""), "\"\"");
        assert_eq!(cell("203.0.113.10"), "\"203.0.113.10\"");
    }

    #[test]
    fn quotes_are_doubled_and_separators_stay_inside() {
        assert_eq!(
            cell(r#"{"a":"b, c"}"#),
            r#""{""a"":""b, c""}""#,
            "a JSON cell"
        );
        assert_eq!(cell("two\r\nlines"), "\"two\r\nlines\"");
    }

    #[test]
    fn formula_starts_get_a_leading_apostrophe() {
        for (raw, want) in [
            (
                "=HYPERLINK(\"http://x\")",
                "\"'=HYPERLINK(\"\"http://x\"\")\"",
            ),
            ("+1", "\"'+1\""),
            ("-2+3", "\"'-2+3\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("\tx", "\"'\tx\""),
            ("\rx", "\"'\rx\""),
            ("'quoted", "\"''quoted\""),
        ] {
            assert_eq!(cell(raw), want, "{raw:?}");
        }
        // Only the first character counts.
        assert_eq!(cell("a=b"), "\"a=b\"");
        assert_eq!(cell(" =1"), "\" =1\"");
    }

    #[test]
    fn rows_join_cells_and_end_with_crlf() {
        assert_eq!(row(&["a", "=b", "c\"d"]), "\"a\",\"'=b\",\"c\"\"d\"\r\n");
        assert_eq!(row::<&str>(&[]), "\r\n");
    }
}
