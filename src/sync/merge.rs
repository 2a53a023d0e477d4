//! The three-way merge of one linked pair, as pure functions.
//!
//! A pairing reads both records into canonical [`Fields`] (normalised values keyed by the
//! pairing's field names). The link keeps, per side, the values that side had after the last
//! sync ([`Snapshot`]). A field changed on a side when its value differs from that side's
//! snapshot; changes flow according to the field's [`Rule`]. Keeping one snapshot per side
//! (rather than one merged record) is what lets a change the other API cannot take (a
//! [`Flow::Report`]) stay reported without the unchanged side looking "changed back".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Canonical values by field name; `Value::Null` is "unset".
pub type Fields = BTreeMap<String, Value>;

/// The per-side values as of the last sync.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(default)]
    pub webcrm: Fields,
    #[serde(default)]
    pub chargebee: Fields,
}

impl Snapshot {
    /// The stored JSON text; an unreadable or empty one is an empty snapshot (a fresh link).
    pub fn parse(text: &str) -> Snapshot {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// What happens to a change travelling in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The other side is written.
    Write,
    /// The other API cannot take it: a pending action asks a human to.
    Report,
    /// Changes on this side are not propagated (the other side is the master of the field).
    Ignore,
}

/// How one field syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub field: &'static str,
    /// A change made in webCRM.
    pub to_chargebee: Flow,
    /// A change made in Chargebee.
    pub to_webcrm: Flow,
}

impl Rule {
    pub const fn both(field: &'static str) -> Rule {
        Rule {
            field,
            to_chargebee: Flow::Write,
            to_webcrm: Flow::Write,
        }
    }
    /// webCRM is the master: Chargebee is written, Chargebee edits are overwritten.
    pub const fn to_chargebee(field: &'static str) -> Rule {
        Rule {
            field,
            to_chargebee: Flow::Write,
            to_webcrm: Flow::Ignore,
        }
    }
    /// Chargebee is the master.
    pub const fn to_webcrm(field: &'static str) -> Rule {
        Rule {
            field,
            to_chargebee: Flow::Ignore,
            to_webcrm: Flow::Write,
        }
    }
    pub const fn with(field: &'static str, to_chargebee: Flow, to_webcrm: Flow) -> Rule {
        Rule {
            field,
            to_chargebee,
            to_webcrm,
        }
    }
}

/// One side's record as read now.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub id: String,
    pub fields: Fields,
    /// When the record last changed (unix ms), for settling conflicts.
    pub changed_at: Option<i64>,
    /// The side's version marker stored on the link (e.g. Chargebee `resource_version`).
    pub version: Option<String>,
    /// The record as the API returned it, for writes that must send the whole record back
    /// (webCRM's PUT) or keep what the sync does not own (Chargebee `meta_data`).
    pub raw: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Winner {
    Webcrm,
    Chargebee,
}

/// Both sides changed a field to different values since the last sync.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub field: &'static str,
    pub webcrm: Value,
    pub chargebee: Value,
    pub winner: Winner,
}

/// A change the target API cannot take, or the end of one.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub field: &'static str,
    /// The side that would have to change.
    pub target: Winner,
    pub want: Value,
    pub have: Value,
}

/// What one merge decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Field values to write to webCRM.
    pub webcrm: Fields,
    /// Field values to write to Chargebee.
    pub chargebee: Fields,
    pub conflicts: Vec<Conflict>,
    /// Open differences a human must settle (one per field still differing).
    pub reports: Vec<Report>,
    /// Fields of `Report` rules that agree again (their pending actions can close).
    pub settled: Vec<&'static str>,
    /// The snapshot to store once the writes are done.
    pub next: Snapshot,
}

impl Plan {
    pub fn writes_nothing(&self) -> bool {
        self.webcrm.is_empty() && self.chargebee.is_empty()
    }
}

fn get<'a>(fields: &'a Fields, name: &str) -> &'a Value {
    fields.get(name).unwrap_or(&Value::Null)
}

/// The newer side wins a conflict; on a tie (or unknown times) Chargebee, the billing system,
/// wins, so the outcome never depends on which job ran first.
pub fn newer(webcrm_at: Option<i64>, chargebee_at: Option<i64>) -> Winner {
    match (webcrm_at, chargebee_at) {
        (Some(w), Some(c)) if w > c => Winner::Webcrm,
        (Some(_), None) => Winner::Webcrm,
        _ => Winner::Chargebee,
    }
}

/// The three-way merge of a linked pair (see the module docs).
pub fn merge(rules: &[Rule], snapshot: &Snapshot, w: &Observed, c: &Observed) -> Plan {
    merge_forcing(rules, snapshot, w, c, &Fields::new())
}

/// [`merge`], with `forced` values that both sides must take whatever changed (an operator
/// resolving a conflict for the side that lost it).
pub fn merge_forcing(
    rules: &[Rule],
    snapshot: &Snapshot,
    w: &Observed,
    c: &Observed,
    forced: &Fields,
) -> Plan {
    let mut plan = Plan {
        next: Snapshot {
            webcrm: w.fields.clone(),
            chargebee: c.fields.clone(),
        },
        ..Plan::default()
    };
    for rule in rules {
        let f = rule.field;
        let (wv, cv) = (get(&w.fields, f), get(&c.fields, f));
        let changed_w = rule.to_chargebee != Flow::Ignore && wv != get(&snapshot.webcrm, f);
        let changed_c = rule.to_webcrm != Flow::Ignore && cv != get(&snapshot.chargebee, f);
        // The value both sides should hold, when a change calls for one.
        let target: Option<(Value, Winner)> = match (changed_w, changed_c) {
            (true, true) if wv == cv => None,
            (true, true) => {
                let winner = newer(w.changed_at, c.changed_at);
                plan.conflicts.push(Conflict {
                    field: f,
                    webcrm: wv.clone(),
                    chargebee: cv.clone(),
                    winner,
                });
                Some(match winner {
                    Winner::Webcrm => (wv.clone(), Winner::Webcrm),
                    Winner::Chargebee => (cv.clone(), Winner::Chargebee),
                })
            }
            (true, false) => Some((wv.clone(), Winner::Webcrm)),
            (false, true) => Some((cv.clone(), Winner::Chargebee)),
            // Nothing changed, but a one-way field drifted on the side that is not its
            // master: the master's value is enforced.
            (false, false) if wv != cv && rule.to_webcrm == Flow::Ignore => {
                Some((wv.clone(), Winner::Webcrm))
            }
            (false, false) if wv != cv && rule.to_chargebee == Flow::Ignore => {
                Some((cv.clone(), Winner::Chargebee))
            }
            (false, false) => None,
        };
        if let Some(value) = forced.get(f) {
            apply(
                rule.to_chargebee,
                f,
                value.clone(),
                cv,
                Winner::Chargebee,
                &mut plan,
            );
            apply(
                rule.to_webcrm,
                f,
                value.clone(),
                wv,
                Winner::Webcrm,
                &mut plan,
            );
            continue;
        }
        let has_target = target.is_some();
        match target {
            Some((value, Winner::Webcrm)) => apply(
                rule.to_chargebee,
                f,
                value,
                cv,
                Winner::Chargebee,
                &mut plan,
            ),
            Some((value, Winner::Chargebee)) => {
                apply(rule.to_webcrm, f, value, wv, Winner::Webcrm, &mut plan)
            }
            None => {}
        }
        let reportable = rule.to_chargebee == Flow::Report || rule.to_webcrm == Flow::Report;
        if reportable && wv == cv {
            plan.settled.push(f);
        } else if reportable && !has_target {
            // Still apart from an earlier report: keep it listed.
            if rule.to_chargebee == Flow::Report && changed_since_agreed(snapshot, f) {
                plan.reports.push(Report {
                    field: f,
                    target: Winner::Chargebee,
                    want: wv.clone(),
                    have: cv.clone(),
                });
            } else if rule.to_webcrm == Flow::Report && changed_since_agreed(snapshot, f) {
                plan.reports.push(Report {
                    field: f,
                    target: Winner::Webcrm,
                    want: cv.clone(),
                    have: wv.clone(),
                });
            }
        }
    }
    plan
}

/// Every value a merge with this Chargebee record could write to webCRM that webCRM's
/// snapshot does not hold already. A merge only ever writes Chargebee's value (or a forced
/// one) to webCRM, so these are known before webCRM is read: noting them first lets the
/// webCRM PUT follow its read with nothing in between (see the engine).
pub fn possible_webcrm_writes(
    rules: &[Rule],
    snapshot: &Snapshot,
    chargebee: &Fields,
    forced: &Fields,
) -> Fields {
    rules
        .iter()
        .filter(|r| r.to_webcrm == Flow::Write)
        .filter_map(|r| {
            let value = forced
                .get(r.field)
                .unwrap_or_else(|| get(chargebee, r.field));
            (value != get(&snapshot.webcrm, r.field)).then(|| (r.field.to_owned(), value.clone()))
        })
        .collect()
}

/// Whether `noted` covers every webCRM write of `plan` that a later run could mistake for
/// an edit (a value webCRM's snapshot does not already hold).
pub fn covers_webcrm_writes(noted: &Fields, plan: &Plan, snapshot: &Snapshot) -> bool {
    plan.webcrm
        .iter()
        .all(|(f, v)| get(&snapshot.webcrm, f) == v || noted.get(f) == Some(v))
}

/// Takes into `snapshot` the values a sync was about to write (`pending`, noted on the link
/// before the write) that one side's record now holds (`side`, its fields as read): that
/// write happened but its commit did not, so those values are ours, not someone's edit.
pub fn adopt_own_writes(snapshot: &mut Snapshot, pending: &Snapshot, side: Winner, now: &Fields) {
    let (written, base) = match side {
        Winner::Webcrm => (&pending.webcrm, &mut snapshot.webcrm),
        Winner::Chargebee => (&pending.chargebee, &mut snapshot.chargebee),
    };
    for (f, value) in written {
        if get(now, f) == value {
            base.insert(f.clone(), value.clone());
        }
    }
}

/// The snapshot a link to a counterpart an earlier attempt made starts its first merge
/// from: the source's values when that attempt began (`base`) on the source's side, and on
/// the counterpart's, those values for the fields it was made with (its own for the rest).
/// Edits since on either side then merge as edits, and only a field changed on both is a
/// conflict.
pub fn made_from(
    rules: &[Rule],
    base: &Fields,
    source: Winner,
    w: &Observed,
    c: &Observed,
) -> Snapshot {
    let (counterpart, made_with): (&Observed, fn(&Rule) -> Flow) = match source {
        Winner::Webcrm => (c, |r| r.to_chargebee),
        Winner::Chargebee => (w, |r| r.to_webcrm),
    };
    let mut made = counterpart.fields.clone();
    for rule in rules.iter().filter(|r| made_with(r) == Flow::Write) {
        made.insert(rule.field.to_owned(), get(base, rule.field).clone());
    }
    match source {
        Winner::Webcrm => Snapshot {
            webcrm: base.clone(),
            chargebee: made,
        },
        Winner::Chargebee => Snapshot {
            webcrm: made,
            chargebee: base.clone(),
        },
    }
}

/// The snapshot a link to a counterpart found rather than made starts its first merge from
/// (the counterpart may have been edited since an earlier attempt made it, and nothing
/// tells which side's value is the edit). Where the two records agree, that value; where
/// they differ, a value neither holds, so the field counts as changed on both sides: a
/// field one side is the master of is written across, and a shared field settles as a
/// conflict (the newer record wins and the loser is kept).
pub fn link_start(w: &Observed, c: &Observed) -> Snapshot {
    let unknown = Value::String("\u{0}not yet synced".to_owned());
    let base: Fields = w
        .fields
        .keys()
        .chain(c.fields.keys())
        .map(|f| {
            let (wv, cv) = (get(&w.fields, f), get(&c.fields, f));
            let value = if wv == cv {
                wv.clone()
            } else {
                unknown.clone()
            };
            (f.clone(), value)
        })
        .collect();
    Snapshot {
        webcrm: base.clone(),
        chargebee: base,
    }
}

/// Whether a side's record holds, in every field of the pairing, what that side held at
/// the last sync (`own`, its half of the snapshot).
pub fn unchanged(rules: &[Rule], own: &Fields, now: &Fields) -> bool {
    rules.iter().all(|r| get(now, r.field) == get(own, r.field))
}

/// Whether the snapshot shows the two sides apart on `f` (an open report).
fn changed_since_agreed(snapshot: &Snapshot, f: &str) -> bool {
    get(&snapshot.webcrm, f) != get(&snapshot.chargebee, f)
}

/// Puts `value` on the `side` record if it differs, as the flow allows.
fn apply(flow: Flow, f: &'static str, value: Value, have: &Value, side: Winner, plan: &mut Plan) {
    if &value == have {
        return;
    }
    match flow {
        Flow::Write => {
            let (writes, next) = match side {
                Winner::Webcrm => (&mut plan.webcrm, &mut plan.next.webcrm),
                Winner::Chargebee => (&mut plan.chargebee, &mut plan.next.chargebee),
            };
            writes.insert(f.to_owned(), value.clone());
            next.insert(f.to_owned(), value);
        }
        Flow::Report => plan.reports.push(Report {
            field: f,
            target: side,
            want: value,
            have: have.clone(),
        }),
        Flow::Ignore => {}
    }
}

/// The values a new counterpart is created with: every field that flows from the source.
pub fn create_values(rules: &[Rule], source: &Observed, from: Winner) -> Fields {
    rules
        .iter()
        .filter(|r| match from {
            Winner::Webcrm => r.to_chargebee == Flow::Write,
            Winner::Chargebee => r.to_webcrm == Flow::Write,
        })
        .filter_map(|r| {
            source
                .fields
                .get(r.field)
                .filter(|v| !v.is_null())
                .map(|v| (r.field.to_owned(), v.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: &[Rule] = &[
        Rule::both("email"),
        Rule::both("name"),
        Rule::to_chargebee("company"),
        Rule::with("title", Flow::Report, Flow::Write),
    ];

    fn fields(v: Value) -> Fields {
        serde_json::from_value(v).unwrap()
    }

    fn obs(v: Value, at: i64) -> Observed {
        Observed {
            id: "x".into(),
            fields: fields(v),
            changed_at: Some(at),
            version: None,
            raw: Value::Null,
        }
    }

    fn snap(w: Value, c: Value) -> Snapshot {
        Snapshot {
            webcrm: fields(w),
            chargebee: fields(c),
        }
    }

    #[test]
    fn possible_webcrm_writes_cover_every_merge() {
        // Every combination of snapshot, current values and forcing, for each kind of rule:
        // what a merge writes to webCRM is always among the values noted before the read.
        let rules = [
            Rule::both("f"),
            Rule::to_chargebee("f"),
            Rule::to_webcrm("f"),
            Rule::with("f", Flow::Report, Flow::Write),
            Rule::with("f", Flow::Write, Flow::Report),
        ];
        let values = [json!("a"), json!("b"), json!("c"), Value::Null];
        let one = |v: &Value| fields(json!({ "f": v }));
        let mut merges_writing_webcrm = 0;
        for rule in rules {
            for sw in &values {
                for sc in &values {
                    for w in &values {
                        for c in &values {
                            for forced in [Fields::new(), one(&json!("a"))] {
                                let s = Snapshot {
                                    webcrm: one(sw),
                                    chargebee: one(sc),
                                };
                                let (wo, co) =
                                    (obs(json!({ "f": w }), 1), obs(json!({ "f": c }), 2));
                                let plan = merge_forcing(&[rule], &s, &wo, &co, &forced);
                                let noted =
                                    possible_webcrm_writes(&[rule], &s, &co.fields, &forced);
                                assert!(
                                    covers_webcrm_writes(&noted, &plan, &s),
                                    "{rule:?} {s:?} w={w} c={c} forced={forced:?}: {plan:?} not in {noted:?}"
                                );
                                merges_writing_webcrm += usize::from(!plan.webcrm.is_empty());
                            }
                        }
                    }
                }
            }
        }
        assert!(merges_writing_webcrm > 100, "{merges_writing_webcrm}");
    }

    #[test]
    fn unchanged_pair_writes_nothing() {
        let s = snap(
            json!({"email": "a", "name": "n"}),
            json!({"email": "a", "name": "n"}),
        );
        let p = merge(
            RULES,
            &s,
            &obs(json!({"email": "a", "name": "n"}), 1),
            &obs(json!({"email": "a", "name": "n"}), 1),
        );
        assert!(p.writes_nothing());
        assert!(p.conflicts.is_empty());
        assert_eq!(p.next, s);
    }

    #[test]
    fn change_on_one_side_is_written_to_the_other() {
        let s = snap(json!({"email": "a"}), json!({"email": "a"}));
        let p = merge(
            RULES,
            &s,
            &obs(json!({"email": "b"}), 1),
            &obs(json!({"email": "a"}), 1),
        );
        assert_eq!(p.chargebee, fields(json!({"email": "b"})));
        assert!(p.webcrm.is_empty());
        assert_eq!(p.next.chargebee["email"], json!("b"));
        let p = merge(
            RULES,
            &s,
            &obs(json!({"email": "a"}), 1),
            &obs(json!({"email": "c"}), 1),
        );
        assert_eq!(p.webcrm, fields(json!({"email": "c"})));
    }

    #[test]
    fn conflict_goes_to_the_newer_side_and_is_recorded() {
        let s = snap(json!({"name": "n"}), json!({"name": "n"}));
        let p = merge(
            RULES,
            &s,
            &obs(json!({"name": "w"}), 20),
            &obs(json!({"name": "c"}), 10),
        );
        assert_eq!(p.chargebee, fields(json!({"name": "w"})));
        assert_eq!(p.conflicts.len(), 1);
        assert_eq!(p.conflicts[0].winner, Winner::Webcrm);
        let p = merge(
            RULES,
            &s,
            &obs(json!({"name": "w"}), 10),
            &obs(json!({"name": "c"}), 20),
        );
        assert_eq!(p.webcrm, fields(json!({"name": "c"})));
        assert_eq!(p.conflicts[0].winner, Winner::Chargebee);
        assert_eq!(p.conflicts[0].webcrm, json!("w"));
    }

    #[test]
    fn a_write_whose_commit_was_lost_is_not_taken_for_an_edit() {
        let s = snap(
            json!({"email": "a", "name": "old"}),
            json!({"email": "a", "name": "old"}),
        );
        // We wrote Chargebee's name "ours" and stopped before the commit; since then a user
        // set webCRM's name to "theirs".
        let pending = snap(json!({}), json!({"name": "ours"}));
        let w = obs(json!({"email": "a", "name": "theirs"}), 1);
        let c = obs(json!({"email": "a", "name": "ours"}), 2);
        let plain = merge(RULES, &s, &w, &c);
        assert_eq!(
            plain.conflicts.len(),
            1,
            "without the note it looks like a conflict"
        );
        let mut adopted = s.clone();
        adopt_own_writes(&mut adopted, &pending, Winner::Webcrm, &w.fields);
        adopt_own_writes(&mut adopted, &pending, Winner::Chargebee, &c.fields);
        let p = merge(RULES, &adopted, &w, &c);
        assert!(p.conflicts.is_empty());
        assert_eq!(p.chargebee.get("name"), Some(&json!("theirs")));
        // A side that no longer holds the noted value keeps its snapshot.
        let mut kept = s.clone();
        adopt_own_writes(&mut kept, &pending, Winner::Chargebee, &w.fields);
        assert_eq!(kept, s);
    }

    #[test]
    fn a_counterpart_made_by_an_earlier_attempt_merges_edits_made_since() {
        // A customer (Chargebee, the source) had name "n", email "a" when an attempt made
        // the person from it; since then the person's name and the customer's email changed.
        let base = fields(json!({"email": "a", "name": "n", "title": "t"}));
        let w = obs(
            json!({"email": "a", "name": "edited", "company": "Co", "title": "t"}),
            1,
        );
        let c = obs(json!({"email": "b", "name": "n", "title": "t"}), 2);
        let start = made_from(RULES, &base, Winner::Chargebee, &w, &c);
        let p = merge(RULES, &start, &w, &c);
        assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
        assert_eq!(p.chargebee.get("name"), Some(&json!("edited")));
        assert_eq!(p.webcrm.get("email"), Some(&json!("b")));
        // The one-way field the person is the master of goes across as well.
        assert_eq!(p.chargebee.get("company"), Some(&json!("Co")));
    }

    #[test]
    fn a_new_link_settles_what_the_two_records_disagree_on() {
        let rules = [
            Rule::both("name"),
            Rule::both("phone"),
            Rule::to_chargebee("cross_id"),
        ];
        let w = obs(
            json!({"name": "Edited", "phone": "1", "cross_id": "7"}),
            2_000,
        );
        let c = obs(json!({"name": "Ada", "phone": "1"}), 1_000);
        let plan = merge(&rules, &link_start(&w, &c), &w, &c);
        // The agreed field is left alone, the master's one-way field is written across,
        // and the shared field both hold differently goes to the newer record, recorded.
        assert_eq!(plan.chargebee.get("name"), Some(&json!("Edited")));
        assert_eq!(plan.chargebee.get("cross_id"), Some(&json!("7")));
        assert!(!plan.chargebee.contains_key("phone"));
        assert!(plan.webcrm.is_empty());
        assert_eq!(plan.conflicts.len(), 1);
        assert_eq!(plan.conflicts[0].field, "name");
        assert_eq!(plan.conflicts[0].winner, Winner::Webcrm);
        // Records that agree start a link with nothing to do.
        let same = merge(&rules, &link_start(&c, &c), &c, &c);
        assert!(same.writes_nothing() && same.conflicts.is_empty());
    }

    #[test]
    fn unchanged_compares_every_rule_field_and_reads_missing_as_unset() {
        let rules = [Rule::both("a"), Rule::to_chargebee("b")];
        let own: Fields = [("a".to_owned(), json!("x"))].into_iter().collect();
        let same: Fields = [("a".to_owned(), json!("x")), ("b".to_owned(), Value::Null)]
            .into_iter()
            .collect();
        assert!(unchanged(&rules, &own, &same));
        let other_b: Fields = [("a".to_owned(), json!("x")), ("b".to_owned(), json!("y"))]
            .into_iter()
            .collect();
        assert!(!unchanged(&rules, &own, &other_b));
        let not_a_rule: Fields = [("a".to_owned(), json!("x")), ("z".to_owned(), json!(1))]
            .into_iter()
            .collect();
        assert!(unchanged(&rules, &own, &not_a_rule));
    }

    #[test]
    fn same_change_on_both_sides_is_no_conflict() {
        let s = snap(json!({"name": "n"}), json!({"name": "n"}));
        let p = merge(
            RULES,
            &s,
            &obs(json!({"name": "z"}), 1),
            &obs(json!({"name": "z"}), 2),
        );
        assert!(p.writes_nothing());
        assert!(p.conflicts.is_empty());
    }

    #[test]
    fn one_way_field_overwrites_edits_on_the_other_side() {
        let s = snap(json!({"company": "A"}), json!({"company": "A"}));
        let p = merge(
            RULES,
            &s,
            &obs(json!({"company": "A"}), 1),
            &obs(json!({"company": "B"}), 9),
        );
        assert_eq!(p.chargebee, fields(json!({"company": "A"})));
        assert!(p.conflicts.is_empty());
    }

    #[test]
    fn unwritable_change_is_reported_until_the_sides_agree() {
        let s = snap(json!({"title": "old"}), json!({"title": "old"}));
        let w = obs(json!({"title": "new"}), 1);
        let p = merge(RULES, &s, &w, &obs(json!({"title": "old"}), 1));
        assert!(p.writes_nothing());
        assert_eq!(p.reports.len(), 1);
        assert_eq!(p.reports[0].want, json!("new"));
        // Next run, nothing changed: still reported, and Chargebee is not "changed back".
        let p2 = merge(RULES, &p.next, &w, &obs(json!({"title": "old"}), 1));
        assert!(p2.writes_nothing());
        assert_eq!(p2.reports.len(), 1);
        // Someone renamed it in Chargebee: settled.
        let p3 = merge(RULES, &p2.next, &w, &obs(json!({"title": "new"}), 2));
        assert!(p3.writes_nothing());
        assert!(p3.reports.is_empty());
        assert_eq!(p3.settled, vec!["title"]);
    }

    #[test]
    fn echo_of_our_own_write_is_a_no_op() {
        let s = snap(json!({"email": "a"}), json!({"email": "a"}));
        let p = merge(
            RULES,
            &s,
            &obs(json!({"email": "b"}), 1),
            &obs(json!({"email": "a"}), 1),
        );
        // Chargebee now holds what we wrote; the webhook about it comes back.
        let p2 = merge(
            RULES,
            &p.next,
            &obs(json!({"email": "b"}), 1),
            &obs(json!({"email": "b"}), 2),
        );
        assert!(p2.writes_nothing());
        assert!(p2.conflicts.is_empty());
    }

    #[test]
    fn forced_value_is_written_to_both_sides() {
        let s = snap(json!({"name": "w"}), json!({"name": "w"}));
        let forced = fields(json!({"name": "c"}));
        let p = merge_forcing(
            RULES,
            &s,
            &obs(json!({"name": "w"}), 1),
            &obs(json!({"name": "w"}), 1),
            &forced,
        );
        assert_eq!(p.webcrm, forced);
        assert_eq!(p.chargebee, forced);
        assert_eq!(p.next.webcrm["name"], json!("c"));
    }

    #[test]
    fn create_values_take_what_flows_from_the_source() {
        let w = obs(json!({"email": "a", "company": "A", "title": "t"}), 1);
        assert_eq!(
            create_values(RULES, &w, Winner::Webcrm),
            fields(json!({"email": "a", "company": "A"}))
        );
        assert_eq!(
            create_values(RULES, &w, Winner::Chargebee),
            fields(json!({"email": "a", "title": "t"}))
        );
    }
}
