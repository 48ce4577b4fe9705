//! Dynamic SQL with positional arguments that binds the same way on both backends.
//!
//! List and board queries add conditions per filter; [`Sql`] collects the text and the
//! arguments, and [`fetch_all!`](crate::sql_fetch_all) binds them for whichever backend
//! the database is.

use crate::types::Timestamp;

/// One bound value.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
    Time(Timestamp),
}

/// SQL text plus its arguments, numbered `$1…$n` in push order.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            args: Vec::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Adds an argument and returns its placeholder (`$3`).
    pub fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub fn text_arg(&mut self, value: impl Into<String>) -> String {
        self.arg(Arg::Text(value.into()))
    }

    /// `(…, $i, $j, …)` for an `IN` list of texts; never empty (an empty list gives
    /// `(NULL)`, which matches nothing).
    pub fn in_list<S: AsRef<str>>(&mut self, values: &[S]) -> String {
        if values.is_empty() {
            return "(NULL)".into();
        }
        let placeholders: Vec<String> = values
            .iter()
            .map(|v| self.text_arg(v.as_ref().to_string()))
            .collect();
        format!("({})", placeholders.join(", "))
    }
}

/// Binds [`Sql`] arguments onto a `query_as`/`query_scalar` of either backend.
#[macro_export]
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut __q = $query;
        for __a in $args.iter() {
            __q = match __a {
                $crate::crm::sql::Arg::Text(s) => __q.bind(s.clone()),
                $crate::crm::sql::Arg::Int(i) => __q.bind(*i),
                $crate::crm::sql::Arg::Time(t) => __q.bind(*t),
            };
        }
        __q
    }};
}

/// `fetch_all` of a [`Sql`] as rows of `$row` on the read pool of `$db`.
#[macro_export]
macro_rules! sql_fetch_all {
    ($db:expr, $row:ty, $sql:expr) => {{
        let __sql: &$crate::crm::sql::Sql = $sql;
        $crate::read!($db, pool => {
            $crate::bind_args!(
                sqlx::query_as::<_, $row>(sqlx::AssertSqlSafe(__sql.text.clone())),
                __sql.args
            )
            .fetch_all(pool)
            .await
        })
    }};
}
