/// The SQL dialect of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (bundled).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

impl Dialect {
    /// The backend a URL names.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next()?;
        match scheme {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::Mysql),
            _ => None,
        }
    }

    /// `?` → `$1, $2...` for PostgreSQL; the others take `?` as is. Queries never hold a `?` in
    /// a string literal, so a plain scan is enough.
    pub fn placeholders(self, q: &str) -> String {
        if self != Self::Postgres {
            return q.to_owned();
        }
        let mut out = String::with_capacity(q.len() + 16);
        let mut n = 0;
        for c in q.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// DDL with `{ID}` (auto-increment primary key), `{KEY}` (indexable string), `{TEXT}`
    /// (long text) and `{F64}` rendered for this backend.
    pub(crate) fn ddl(self, template: &str) -> String {
        let (id, key, text, f64) = match self {
            Self::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", "TEXT", "REAL"),
            Self::Postgres => ("BIGSERIAL PRIMARY KEY", "TEXT", "TEXT", "DOUBLE PRECISION"),
            // utf8mb4 VARCHAR(255) stays under InnoDB's index key limit.
            Self::Mysql => (
                "BIGINT AUTO_INCREMENT PRIMARY KEY",
                "VARCHAR(255)",
                "MEDIUMTEXT",
                "DOUBLE",
            ),
        };
        template
            .replace("{ID}", id)
            .replace("{KEY}", key)
            .replace("{TEXT}", text)
            .replace("{F64}", f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            Dialect::Postgres.placeholders("a = ? AND b IN (?, ?)"),
            "a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(Dialect::Mysql.placeholders("a = ?"), "a = ?");
        assert_eq!(Dialect::from_url("postgresql://x"), Some(Dialect::Postgres));
        assert_eq!(Dialect::from_url("redis://x"), None);
    }
}
