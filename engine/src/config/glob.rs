//! The `*` wildcard of selection patterns (tables, columns, message prefixes).
//!
//! `*` matches any run of characters, also none; every other character matches itself
//! (case-sensitive). Table and column patterns are matched part by part (`schema`, `table`,
//! `column`), so a `*` never reaches across a `.`.

/// Whether `text` matches `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether `pattern` holds a wildcard.
pub fn is_pattern(pattern: &str) -> bool {
    pattern.contains('*')
}

/// Whether the column pattern `schema.table.column` matches (all three parts). A pattern that
/// is not three parts matches nothing (configuration refuses it).
pub fn column_matches(pattern: &str, schema: &str, table: &str, column: &str) -> bool {
    match split_column_pattern(pattern) {
        Some((s, t, c)) => matches(s, schema) && matches(t, table) && matches(c, column),
        None => false,
    }
}

/// Whether the `schema.table` parts of the column pattern match the table.
pub fn column_pattern_names_table(pattern: &str, schema: &str, table: &str) -> bool {
    match split_column_pattern(pattern) {
        Some((s, t, _)) => matches(s, schema) && matches(t, table),
        None => false,
    }
}

/// `schema.table.column` → its three parts.
pub fn split_column_pattern(pattern: &str) -> Option<(&str, &str, &str)> {
    let mut parts = pattern.split('.');
    let (s, t, c) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some((s, t, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("a*b*c", "abc"));
        assert!(matches("a*b*c", "a-b-b-c"));
        assert!(!matches("a*b*c", "a-c-b"));
        assert!(matches("*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("ab*", "ab"));
        assert!(!matches("ab*ba", "aba"));
        assert!(!matches("abc", "abcd"));
        assert!(matches("order_*", "order_lines"));
        assert!(!matches("order_*", "orders"));
        assert!(matches("*_archive", "sales_archive"));
        assert!(!matches("Orders", "orders"), "case-sensitive");
        assert!(!is_pattern("public.products"));
        assert!(is_pattern("public.*"));
    }

    #[test]
    fn column_patterns() {
        assert!(column_matches(
            "public.users.password",
            "public",
            "users",
            "password"
        ));
        assert!(column_matches(
            "*.*.secret_*",
            "sales",
            "orders",
            "secret_note"
        ));
        assert!(!column_matches("*.*.secret_*", "sales", "orders", "secret"));
        // A `*` stays within its part: `public.*` is not a column pattern.
        assert!(!column_matches("public.*", "public", "users", "id"));
        assert!(!column_matches(
            "public.users.id.x",
            "public",
            "users",
            "id"
        ));
        assert!(column_pattern_names_table(
            "public.user*.id",
            "public",
            "users"
        ));
        assert!(!column_pattern_names_table(
            "public.user*.id",
            "sales",
            "users"
        ));
        assert_eq!(split_column_pattern("a.b.c"), Some(("a", "b", "c")));
        assert_eq!(split_column_pattern("a.b"), None);
    }
}
