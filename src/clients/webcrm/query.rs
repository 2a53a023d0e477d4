//! A builder for `GET /Queries` scripts.
//!
//! webCRM's query endpoint takes a raw SQL-like script. Scripts are only ever built here:
//! identifiers are checked against a strict pattern and every value is a typed [`Literal`]
//! rendered by [`Literal::render`] (text in single quotes with quotes doubled, instants in
//! .NET round-trip format), so no caller input can change the structure of a query.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::dates::format_query_datetime;

/// Why a query could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// A table or column name that is not a plain identifier.
    #[error("invalid identifier {0:?} in a webCRM query")]
    InvalidIdentifier(String),
    /// NaN or an infinite number cannot be written as a literal.
    #[error("non-finite number in a webCRM query")]
    NonFiniteNumber,
    /// A text containing a NUL character.
    #[error("text literal contains a NUL character")]
    NulInText,
    /// `IN ()` with nothing in it.
    #[error("empty IN list in a webCRM query")]
    EmptyInList,
}

/// The query tables (singular names) this service reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// `Organisation`
    Organisation,
    /// `Person`
    Person,
    /// `User`
    User,
    /// `Opportunity`
    Opportunity,
    /// `QuotationLine`
    QuotationLine,
}

impl Table {
    /// The name used after `FROM`.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Organisation => "Organisation",
            Table::Person => "Person",
            Table::User => "User",
            Table::Opportunity => "Opportunity",
            Table::QuotationLine => "QuotationLine",
        }
    }

    /// The id column, e.g. `OrganisationId`.
    pub fn id_column(self) -> &'static str {
        match self {
            Table::Organisation => "OrganisationId",
            Table::Person => "PersonId",
            Table::User => "UserId",
            Table::Opportunity => "OpportunityId",
            Table::QuotationLine => "QuotationLineId",
        }
    }

    /// The last-modified column, e.g. `OrganisationUpdatedAt`.
    pub fn updated_at_column(self) -> &'static str {
        match self {
            Table::Organisation => "OrganisationUpdatedAt",
            Table::Person => "PersonUpdatedAt",
            Table::User => "UserUpdatedAt",
            Table::Opportunity => "OpportunityUpdatedAt",
            Table::QuotationLine => "QuotationLineUpdatedAt",
        }
    }
}

/// A typed value in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// Text: `'…'` with `'` doubled.
    Text(String),
    /// An integer.
    Int(i64),
    /// A finite number.
    Number(f64),
    /// A boolean, written `1` / `0` (SQL bit).
    Bool(bool),
    /// An instant, written as quoted .NET round-trip UTC text.
    DateTime(DateTime<Utc>),
}

impl Literal {
    /// The literal as it appears in a script.
    pub fn render(&self) -> Result<String, QueryError> {
        Ok(match self {
            Literal::Text(s) => quote_text(s)?,
            Literal::Int(i) => i.to_string(),
            Literal::Number(n) if n.is_finite() => {
                let text = n.to_string();
                if text.contains('.') {
                    text
                } else {
                    format!("{text}.0")
                }
            }
            Literal::Number(_) => return Err(QueryError::NonFiniteNumber),
            Literal::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
            Literal::DateTime(dt) => format!("'{}'", format_query_datetime(dt)),
        })
    }
}

/// Quotes a text literal: single quotes around, every single quote doubled.
pub fn quote_text(s: &str) -> Result<String, QueryError> {
    if s.contains('\0') {
        return Err(QueryError::NulInText);
    }
    Ok(format!("'{}'", s.replace('\'', "''")))
}

impl From<&str> for Literal {
    fn from(v: &str) -> Self {
        Literal::Text(v.to_owned())
    }
}
impl From<String> for Literal {
    fn from(v: String) -> Self {
        Literal::Text(v)
    }
}
impl From<&String> for Literal {
    fn from(v: &String) -> Self {
        Literal::Text(v.clone())
    }
}
impl From<i32> for Literal {
    fn from(v: i32) -> Self {
        Literal::Int(i64::from(v))
    }
}
impl From<i64> for Literal {
    fn from(v: i64) -> Self {
        Literal::Int(v)
    }
}
impl From<f64> for Literal {
    fn from(v: f64) -> Self {
        Literal::Number(v)
    }
}
impl From<bool> for Literal {
    fn from(v: bool) -> Self {
        Literal::Bool(v)
    }
}
impl From<DateTime<Utc>> for Literal {
    fn from(v: DateTime<Utc>) -> Self {
        Literal::DateTime(v)
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A WHERE condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `column op literal`
    Compare {
        /// Column name.
        column: String,
        /// Operator.
        op: CmpOp,
        /// Value.
        value: Literal,
    },
    /// `column IN (literal, …)`
    In {
        /// Column name.
        column: String,
        /// Values (at least one).
        values: Vec<Literal>,
    },
    /// `column IS NULL`
    IsNull(String),
    /// All of them (`(a AND b AND …)`).
    And(Vec<Condition>),
    /// Any of them (`(a OR b OR …)`).
    Or(Vec<Condition>),
}

/// Starts a condition on a column: `col("PersonEmail").eq("a@example.com")`.
pub fn col(name: impl Into<String>) -> ColumnRef {
    ColumnRef(name.into())
}

/// A column about to be compared; see [`col`].
#[derive(Debug, Clone)]
pub struct ColumnRef(String);

impl ColumnRef {
    fn cmp(self, op: CmpOp, value: impl Into<Literal>) -> Condition {
        Condition::Compare {
            column: self.0,
            op,
            value: value.into(),
        }
    }
    /// `=`
    pub fn eq(self, value: impl Into<Literal>) -> Condition {
        self.cmp(CmpOp::Eq, value)
    }
    /// `<>`
    pub fn ne(self, value: impl Into<Literal>) -> Condition {
        self.cmp(CmpOp::Ne, value)
    }
    /// `<`
    pub fn lt(self, value: impl Into<Literal>) -> Condition {
        self.cmp(CmpOp::Lt, value)
    }
    /// `<=`
    pub fn le(self, value: impl Into<Literal>) -> Condition {
        self.cmp(CmpOp::Le, value)
    }
    /// `>`
    pub fn gt(self, value: impl Into<Literal>) -> Condition {
        self.cmp(CmpOp::Gt, value)
    }
    /// `>=`
    pub fn ge(self, value: impl Into<Literal>) -> Condition {
        self.cmp(CmpOp::Ge, value)
    }
    /// `IN (…)`
    pub fn is_in<L: Into<Literal>>(self, values: impl IntoIterator<Item = L>) -> Condition {
        Condition::In {
            column: self.0,
            values: values.into_iter().map(Into::into).collect(),
        }
    }
    /// `IS NULL`
    pub fn is_null(self) -> Condition {
        Condition::IsNull(self.0)
    }
}

impl Condition {
    /// `self AND other`
    pub fn and(self, other: Condition) -> Condition {
        match self {
            Condition::And(mut all) => {
                all.push(other);
                Condition::And(all)
            }
            first => Condition::And(vec![first, other]),
        }
    }

    /// `self OR other`
    pub fn or(self, other: Condition) -> Condition {
        match self {
            Condition::Or(mut any) => {
                any.push(other);
                Condition::Or(any)
            }
            first => Condition::Or(vec![first, other]),
        }
    }

    fn render(&self, out: &mut String) -> Result<(), QueryError> {
        match self {
            Condition::Compare { column, op, value } => {
                out.push_str(ident(column)?);
                let _ = write!(out, " {} {}", op.as_str(), value.render()?);
            }
            Condition::In { column, values } => {
                if values.is_empty() {
                    return Err(QueryError::EmptyInList);
                }
                out.push_str(ident(column)?);
                out.push_str(" IN (");
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&v.render()?);
                }
                out.push(')');
            }
            Condition::IsNull(column) => {
                out.push_str(ident(column)?);
                out.push_str(" IS NULL");
            }
            Condition::And(parts) | Condition::Or(parts) => {
                let joiner = if matches!(self, Condition::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                match parts.as_slice() {
                    [] => out.push_str(if joiner == " AND " { "1 = 1" } else { "1 = 0" }),
                    [only] => only.render(out)?,
                    many => {
                        out.push('(');
                        for (i, part) in many.iter().enumerate() {
                            if i > 0 {
                                out.push_str(joiner);
                            }
                            part.render(out)?;
                        }
                        out.push(')');
                    }
                }
            }
        }
        Ok(())
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `ASC`
    Asc,
    /// `DESC`
    Desc,
}

/// A `SELECT … FROM … [WHERE …] [ORDER BY …]` script.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    table: Table,
    columns: Vec<String>,
    filter: Option<Condition>,
    order: Vec<(String, Order)>,
}

impl Query {
    /// `SELECT * FROM table`.
    pub fn from(table: Table) -> Self {
        Query {
            table,
            columns: Vec::new(),
            filter: None,
            order: Vec::new(),
        }
    }

    /// The table queried.
    pub fn table(&self) -> Table {
        self.table
    }

    /// Selects these columns instead of `*`.
    pub fn select<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a condition (several are joined with `AND`).
    pub fn filter(mut self, condition: Condition) -> Self {
        self.filter = Some(match self.filter.take() {
            Some(existing) => existing.and(condition),
            None => condition,
        });
        self
    }

    /// Adds a sort key.
    pub fn order_by(mut self, column: impl Into<String>, order: Order) -> Self {
        self.order.push((column.into(), order));
        self
    }

    /// The script text.
    pub fn to_script(&self) -> Result<String, QueryError> {
        let mut out = String::from("SELECT ");
        if self.columns.is_empty() {
            out.push('*');
        } else {
            for (i, c) in self.columns.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(ident(c)?);
            }
        }
        out.push_str(" FROM ");
        out.push_str(self.table.as_str());
        if let Some(filter) = &self.filter {
            out.push_str(" WHERE ");
            filter.render(&mut out)?;
        }
        if !self.order.is_empty() {
            out.push_str(" ORDER BY ");
            for (i, (c, o)) in self.order.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(ident(c)?);
                out.push_str(match o {
                    Order::Asc => " ASC",
                    Order::Desc => " DESC",
                });
            }
        }
        Ok(out)
    }
}

/// Accepts `Name` or `Table.Name` made of ASCII letters, digits and `_` (not starting with a
/// digit); anything else is refused rather than quoted.
fn ident(name: &str) -> Result<&str, QueryError> {
    let ok = !name.is_empty()
        && name.split('.').count() <= 2
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if ok {
        Ok(name)
    } else {
        Err(QueryError::InvalidIdentifier(
            name.chars().take(64).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_where_and_order() {
        let q = Query::from(Table::Organisation)
            .select(["OrganisationId", "OrganisationName"])
            .filter(col("OrganisationName").eq("O'Brien"))
            .filter(
                col("OrganisationId")
                    .ge(3)
                    .or(col("OrganisationId").is_in([1, 2])),
            )
            .order_by("OrganisationUpdatedAt", Order::Asc);
        assert_eq!(
            q.to_script(),
            Ok("SELECT OrganisationId, OrganisationName FROM Organisation WHERE \
                (OrganisationName = 'O''Brien' AND (OrganisationId >= 3 OR OrganisationId IN (1, 2))) \
                ORDER BY OrganisationUpdatedAt ASC"
                .to_owned())
        );
    }

    #[test]
    fn refuses_bad_identifiers() {
        let q = Query::from(Table::Person).filter(col("PersonEmail = '' OR 1=1 --").eq("x"));
        assert!(matches!(
            q.to_script(),
            Err(QueryError::InvalidIdentifier(_))
        ));
    }
}
