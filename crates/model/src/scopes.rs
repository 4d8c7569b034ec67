//! Decision and alert scopes. CrowdSec compares scopes case-insensitively for its four built-in
//! ones and exactly for any other (custom scopes such as `username` are free text).

/// The built-in scope names as CrowdSec spells them.
pub mod scope {
    /// A single IP address.
    pub const IP: &str = "Ip";
    /// A CIDR range.
    pub const RANGE: &str = "Range";
    /// An autonomous system number.
    pub const AS: &str = "AS";
    /// A country ISO code.
    pub const COUNTRY: &str = "Country";
}

/// `ip` → `Ip`, `RANGE` → `Range`, `as` → `AS`, `country` → `Country`; other scopes unchanged.
pub fn normalize_scope(s: &str) -> &str {
    if s.eq_ignore_ascii_case(scope::IP) {
        scope::IP
    } else if s.eq_ignore_ascii_case(scope::RANGE) {
        scope::RANGE
    } else if s.eq_ignore_ascii_case(scope::AS) {
        scope::AS
    } else if s.eq_ignore_ascii_case(scope::COUNTRY) {
        scope::COUNTRY
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scopes_are_case_insensitive_custom_ones_are_not() {
        assert_eq!(normalize_scope("ip"), "Ip");
        assert_eq!(normalize_scope("RANGE"), "Range");
        assert_eq!(normalize_scope("as"), "AS");
        assert_eq!(normalize_scope("country"), "Country");
        assert_eq!(normalize_scope("Username"), "Username");
    }
}
