//! A small SQL subset for the sandbox's `GET /Queries`: a real tokenizer and recursive
//! descent parser (quoted literals with doubled quotes, `--` and `/* */` comments), so a
//! script means what SQL would make of it, never what a substring search would.
//!
//! ```text
//! query   := SELECT ('*' | col (',' col)*) FROM table [WHERE expr]
//!            [ORDER BY col [ASC|DESC] (',' col [ASC|DESC])*]
//! expr    := and (OR and)*          and := not (AND not)*       not := NOT not | primary
//! primary := '(' expr ')' | operand cmp operand | col IS [NOT] NULL
//!          | col [NOT] IN '(' literal (',' literal)* ')' | col [NOT] LIKE 'pattern'
//! operand := col | 'text' | number | NULL            cmp := = <> != < <= > >=
//! ```
//!
//! Text compares case-insensitively (SQL Server's default collation); a date-time column
//! compares with a text literal as an instant; NULL compares as unknown (false).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::clients::webcrm::{parse_webcrm_datetime, FieldKind, FieldSpec};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedQuery {
    /// Table name as written.
    pub table: String,
    /// `None` for `*`.
    pub columns: Option<Vec<String>>,
    /// The WHERE clause.
    pub filter: Option<Expr>,
    /// ORDER BY keys (column, descending).
    pub order: Vec<(String, bool)>,
}

/// A WHERE expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a OR b`
    Or(Box<Expr>, Box<Expr>),
    /// `a AND b`
    And(Box<Expr>, Box<Expr>),
    /// `NOT a`
    Not(Box<Expr>),
    /// `a op b`
    Cmp(Operand, String, Operand),
    /// `col IS [NOT] NULL`
    IsNull(String, bool),
    /// `col [NOT] IN (…)`
    In(String, Vec<Operand>, bool),
    /// `col [NOT] LIKE 'p'`
    Like(String, String, bool),
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A column reference.
    Column(String),
    /// `'text'`
    Text(String),
    /// A number.
    Number(f64),
    /// `NULL`
    Null,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Text(String),
    Number(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Star,
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                loop {
                    if i + 1 >= chars.len() {
                        return Err("unterminated comment".into());
                    }
                    if chars[i] == '*' && chars[i + 1] == '/' {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            '\'' => {
                i += 1;
                let mut s = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Text(s));
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '*' => {
                out.push(Tok::Star);
                i += 1;
            }
            '=' => {
                out.push(Tok::Op("="));
                i += 1;
            }
            '<' | '>' | '!' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('<', Some('=')) => ("<=", 2),
                    ('<', Some('>')) => ("<>", 2),
                    ('>', Some('=')) => (">=", 2),
                    ('!', Some('=')) => ("<>", 2),
                    ('<', _) => ("<", 1),
                    ('>', _) => (">", 1),
                    _ => return Err("unexpected '!'".into()),
                };
                out.push(Tok::Op(op));
                i += len;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse::<f64>()
                    .map_err(|_| format!("bad number {text:?}"))?;
                out.push(Tok::Number(n));
            }
            c if c.is_alphabetic() || c == '_' || c == '[' => {
                let bracketed = c == '[';
                if bracketed {
                    i += 1;
                }
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                let ident: String = chars[start..i].iter().collect();
                if bracketed {
                    if chars.get(i) != Some(&']') {
                        return Err("unterminated [identifier]".into());
                    }
                    i += 1;
                }
                out.push(Tok::Ident(ident));
            }
            ';' => return Err("only one statement is allowed".into()),
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

/// Deepest nesting of parentheses and `NOT` a script may use.
const MAX_DEPTH: usize = 64;
/// Most conditions (comparisons, `AND`, `OR`, `NOT`) a WHERE clause may have. Evaluation
/// recurses over the tree, so both limits keep hostile scripts from overflowing the stack.
const MAX_CONDITIONS: usize = 1_000;

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
    conditions: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_keyword(&mut self, kw: &str) -> Result<(), String> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(format!("expected {kw}"))
        }
    }
    fn condition(&mut self) -> Result<(), String> {
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(format!("more than {MAX_CONDITIONS} conditions"));
        }
        Ok(())
    }
    fn nested<T>(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<T, String>,
    ) -> Result<T, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        self.depth += 1;
        let out = parse(self);
        self.depth -= 1;
        out
    }
    fn ident(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Ident(s)) if !is_reserved(&s) => Ok(s),
            other => Err(format!("expected a name, found {other:?}")),
        }
    }

    fn query(&mut self) -> Result<ParsedQuery, String> {
        self.expect_keyword("SELECT")?;
        let columns = if self.peek() == Some(&Tok::Star) {
            self.pos += 1;
            None
        } else {
            let mut cols = vec![self.ident()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                cols.push(self.ident()?);
            }
            Some(cols)
        };
        self.expect_keyword("FROM")?;
        let table = self.ident()?;
        let filter = if self.keyword("WHERE") {
            Some(self.or()?)
        } else {
            None
        };
        let mut order = Vec::new();
        if self.keyword("ORDER") {
            self.expect_keyword("BY")?;
            loop {
                let col = self.ident()?;
                let desc = if self.keyword("DESC") {
                    true
                } else {
                    self.keyword("ASC");
                    false
                };
                order.push((col, desc));
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        if let Some(t) = self.peek() {
            return Err(format!("unexpected {t:?} after the end of the query"));
        }
        Ok(ParsedQuery {
            table,
            columns,
            filter,
            order,
        })
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            self.condition()?;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            self.condition()?;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }
    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("NOT") {
            self.condition()?;
            return Ok(Expr::Not(Box::new(self.nested(Self::not)?)));
        }
        self.primary()
    }
    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Tok::Text(s)) => Ok(Operand::Text(s)),
            Some(Tok::Number(n)) => Ok(Operand::Number(n)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("NULL") => Ok(Operand::Null),
            Some(Tok::Ident(s)) if !is_reserved(&s) => Ok(Operand::Column(s)),
            other => Err(format!("expected a value or a column, found {other:?}")),
        }
    }
    fn primary(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.nested(Self::or)?;
            return match self.next() {
                Some(Tok::RParen) => Ok(e),
                _ => Err("expected ')'".into()),
            };
        }
        self.condition()?;
        let left = self.operand()?;
        if let Operand::Column(col) = &left {
            if self.keyword("IS") {
                let negated = self.keyword("NOT");
                self.expect_keyword("NULL")?;
                return Ok(Expr::IsNull(col.clone(), negated));
            }
            let negated = self.keyword("NOT");
            if self.keyword("IN") {
                if self.next() != Some(Tok::LParen) {
                    return Err("expected '(' after IN".into());
                }
                let mut items = vec![self.operand()?];
                loop {
                    match self.next() {
                        Some(Tok::Comma) => items.push(self.operand()?),
                        Some(Tok::RParen) => break,
                        _ => return Err("expected ',' or ')' in IN list".into()),
                    }
                }
                if items.iter().any(|o| matches!(o, Operand::Column(_))) {
                    return Err("IN takes literals only".into());
                }
                return Ok(Expr::In(col.clone(), items, negated));
            }
            if self.keyword("LIKE") {
                return match self.next() {
                    Some(Tok::Text(p)) => Ok(Expr::Like(col.clone(), p, negated)),
                    _ => Err("LIKE takes a text pattern".into()),
                };
            }
            if negated {
                return Err("expected IN or LIKE after NOT".into());
            }
        }
        let op = match self.next() {
            Some(Tok::Op(op)) => op.to_owned(),
            other => return Err(format!("expected a comparison, found {other:?}")),
        };
        let right = self.operand()?;
        Ok(Expr::Cmp(left, op, right))
    }
}

fn is_reserved(word: &str) -> bool {
    [
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "ORDER", "BY", "ASC", "DESC", "IS", "NULL",
        "IN", "LIKE",
    ]
    .iter()
    .any(|k| k.eq_ignore_ascii_case(word))
}

/// Parses a script.
pub fn parse(script: &str) -> Result<ParsedQuery, String> {
    let toks = tokenize(script)?;
    Parser {
        toks,
        pos: 0,
        depth: 0,
        conditions: 0,
    }
    .query()
}

/// A column of the queried table.
struct Columns<'a> {
    table: &'a str,
    fields: &'a [FieldSpec],
}

impl Columns<'_> {
    fn resolve(&self, name: &str) -> Result<&FieldSpec, String> {
        let bare = match name.split_once('.') {
            Some((t, c)) if t.eq_ignore_ascii_case(self.table) => c,
            Some(_) => return Err(format!("unknown table in column {name:?}")),
            None => name,
        };
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(bare))
            .ok_or_else(|| format!("Invalid column name '{bare}'"))
    }
}

/// A typed value during evaluation.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    Text(String),
    Num(f64),
    Time(DateTime<Utc>),
}

fn column_value(record: &Map<String, Value>, field: &FieldSpec) -> V {
    match record.get(field.name) {
        None | Some(Value::Null) => V::Null,
        Some(Value::Bool(b)) => V::Num(if *b { 1.0 } else { 0.0 }),
        Some(Value::Number(n)) => n.as_f64().map_or(V::Null, V::Num),
        Some(Value::String(s)) if field.kind == FieldKind::DateTime => {
            match parse_webcrm_datetime(s) {
                Ok(Some(t)) => V::Time(t),
                _ => V::Null,
            }
        }
        Some(Value::String(s)) => V::Text(s.clone()),
        Some(other) => V::Text(other.to_string()),
    }
}

/// Converts a literal to the column's type, as SQL Server would (failure is an error).
fn literal_for(kind: Option<FieldKind>, op: &Operand) -> Result<V, String> {
    Ok(match (kind, op) {
        (_, Operand::Null) => V::Null,
        (Some(FieldKind::DateTime), Operand::Text(s)) => match parse_webcrm_datetime(s) {
            Ok(Some(t)) => V::Time(t),
            Ok(None) => V::Null,
            Err(_) => return Err(format!("Conversion failed when converting '{s}' to a date")),
        },
        (
            Some(FieldKind::Int32 | FieldKind::Int64 | FieldKind::Double | FieldKind::Bool),
            Operand::Text(s),
        ) => match s.trim() {
            t if t.eq_ignore_ascii_case("true") => V::Num(1.0),
            t if t.eq_ignore_ascii_case("false") => V::Num(0.0),
            t => V::Num(
                t.parse::<f64>()
                    .map_err(|_| format!("Conversion failed when converting '{s}' to a number"))?,
            ),
        },
        (_, Operand::Text(s)) => V::Text(s.clone()),
        (_, Operand::Number(n)) => V::Num(*n),
        (_, Operand::Column(_)) => return Err("internal: column as literal".into()),
    })
}

fn compare(a: &V, b: &V) -> Option<Ordering> {
    match (a, b) {
        (V::Null, _) | (_, V::Null) => None,
        (V::Text(x), V::Text(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (V::Num(x), V::Num(y)) => x.partial_cmp(y),
        (V::Time(x), V::Time(y)) => Some(x.cmp(y)),
        (V::Text(x), V::Num(y)) => x.trim().parse::<f64>().ok()?.partial_cmp(y),
        (V::Num(x), V::Text(y)) => x.partial_cmp(&y.trim().parse::<f64>().ok()?),
        _ => None,
    }
}

/// `%` matches any run, `_` one character. Backtracks only to the last `%`, so the time is
/// at most length × pattern length, whatever the pattern.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let (mut ti, mut pi) = (0, 0);
    // The last `%` seen and the text position it currently stands in for.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('%') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '_' || c == t[ti] => {
                ti += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    pi = sp + 1;
                    ti = st + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '%')
}

fn eval(expr: &Expr, cols: &Columns<'_>, rec: &Map<String, Value>) -> Result<bool, String> {
    Ok(match expr {
        Expr::Or(a, b) => eval(a, cols, rec)? || eval(b, cols, rec)?,
        Expr::And(a, b) => eval(a, cols, rec)? && eval(b, cols, rec)?,
        Expr::Not(a) => !eval(a, cols, rec)?,
        Expr::IsNull(c, negated) => {
            let f = cols.resolve(c)?;
            (column_value(rec, f) == V::Null) != *negated
        }
        Expr::In(c, items, negated) => {
            let f = cols.resolve(c)?;
            let v = column_value(rec, f);
            if v == V::Null {
                return Ok(false);
            }
            let mut hit = false;
            for item in items {
                let lit = literal_for(Some(f.kind), item)?;
                if compare(&v, &lit) == Some(Ordering::Equal) {
                    hit = true;
                }
            }
            hit != *negated
        }
        Expr::Like(c, pattern, negated) => {
            let f = cols.resolve(c)?;
            match column_value(rec, f) {
                V::Text(t) => like(&t, pattern) != *negated,
                V::Null => false,
                other => like(&format!("{other:?}"), pattern) != *negated,
            }
        }
        Expr::Cmp(l, op, r) => {
            let kind_of = |o: &Operand| -> Result<Option<FieldKind>, String> {
                match o {
                    Operand::Column(c) => Ok(Some(cols.resolve(c)?.kind)),
                    _ => Ok(None),
                }
            };
            let (lk, rk) = (kind_of(l)?, kind_of(r)?);
            let value = |o: &Operand, other_kind: Option<FieldKind>| -> Result<V, String> {
                match o {
                    Operand::Column(c) => Ok(column_value(rec, cols.resolve(c)?)),
                    lit => literal_for(other_kind, lit),
                }
            };
            let a = value(l, rk)?;
            let b = value(r, lk)?;
            match compare(&a, &b) {
                None => false,
                Some(ord) => match op.as_str() {
                    "=" => ord == Ordering::Equal,
                    "<>" => ord != Ordering::Equal,
                    "<" => ord == Ordering::Less,
                    "<=" => ord != Ordering::Greater,
                    ">" => ord == Ordering::Greater,
                    ">=" => ord != Ordering::Less,
                    _ => false,
                },
            }
        }
    })
}

/// Matching records in result order, and the selected field names (`None` for `*`).
pub type QueryResult<'r> = (Vec<&'r Map<String, Value>>, Option<Vec<&'static str>>);

/// Runs a parsed query over `records` (id order) of a table with `fields`; returns the
/// matching records in result order and the selected field names (`None` for `*`).
pub fn execute<'r>(
    query: &ParsedQuery,
    fields: &[FieldSpec],
    records: impl Iterator<Item = &'r Map<String, Value>>,
) -> Result<QueryResult<'r>, String> {
    let cols = Columns {
        table: &query.table,
        fields,
    };
    let selected = match &query.columns {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|c| cols.resolve(c).map(|f| f.name))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let order: Vec<(&FieldSpec, bool)> = query
        .order
        .iter()
        .map(|(c, desc)| cols.resolve(c).map(|f| (f, *desc)))
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for rec in records {
        let keep = match &query.filter {
            Some(f) => eval(f, &cols, rec)?,
            None => true,
        };
        if keep {
            rows.push(rec);
        }
    }
    if !order.is_empty() {
        rows.sort_by(|a, b| {
            for (f, desc) in &order {
                let (x, y) = (column_value(a, f), column_value(b, f));
                // NULL sorts first ascending, as in SQL Server.
                let ord = match (&x, &y) {
                    (V::Null, V::Null) => Ordering::Equal,
                    (V::Null, _) => Ordering::Less,
                    (_, V::Null) => Ordering::Greater,
                    _ => compare(&x, &y).unwrap_or(Ordering::Equal),
                };
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    Ok((rows, selected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubled_quotes_stay_inside_the_literal() {
        let q = parse("SELECT * FROM Organisation WHERE OrganisationName = 'O''Brien''); --'")
            .map_err(|e| e.to_string());
        assert_eq!(
            q.map(|q| q.filter),
            Ok(Some(Expr::Cmp(
                Operand::Column("OrganisationName".into()),
                "=".into(),
                Operand::Text("O'Brien'); --".into())
            )))
        );
    }

    #[test]
    fn comment_swallows_the_rest_of_a_line() {
        let q = parse("select * from Person where PersonId = 1 -- and PersonId = 2");
        assert!(matches!(
            q,
            Ok(ParsedQuery {
                filter: Some(Expr::Cmp(..)),
                ..
            })
        ));
    }

    #[test]
    fn second_statement_is_refused() {
        assert!(parse("SELECT * FROM Person; DELETE FROM Person").is_err());
    }

    #[test]
    fn like_matches_wildcards() {
        assert!(like("Acme Corp", "acme%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_d"));
    }
}
