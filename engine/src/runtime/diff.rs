//! What changed between two definition versions, for people reviewing a reload: files,
//! pipelines with their stages, transitions and each transition's actions, and every
//! other kind of definition (fields, activity kinds, work orders, reminder sets, roles,
//! WhatsApp templates, the calendar), each as added / removed / changed with the values
//! before and after. Positions in the files are not part of a definition, so moving a
//! block around is not a change.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::definitions::Definitions;

/// `added`, `removed` or `changed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// One item that differs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemChange {
    /// The item's id (`randevu`; a transition is `from→to`; an action `#index kind`).
    pub id: String,
    pub change: Change,
    /// For `changed`: the keys whose values differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// A transition that differs, with its actions compared one by one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransitionChange {
    #[serde(flatten)]
    pub item: ItemChange,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ItemChange>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PipelineChange {
    pub id: String,
    pub change: Change,
    /// Pipeline-level keys that differ (`name`, `card`, `on_new_lead`, `on_return`, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<ItemChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<TransitionChange>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct FileChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// Everything that differs from `from` to `to`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Diff {
    pub from: String,
    pub to: String,
    pub files: FileChanges,
    pub pipelines: Vec<PipelineChange>,
    pub customer_fields: Vec<ItemChange>,
    pub card_fields: Vec<ItemChange>,
    pub activity_kinds: Vec<ItemChange>,
    pub work_orders: Vec<ItemChange>,
    pub reminder_sets: Vec<ItemChange>,
    pub roles: Vec<ItemChange>,
    pub whatsapp_templates: Vec<ItemChange>,
    /// `intake` and `calendar`, when they differ.
    pub settings: Vec<ItemChange>,
}

impl Diff {
    /// True when the two versions declare the same things (files may still differ, e.g.
    /// in comments).
    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty()
            && self.customer_fields.is_empty()
            && self.card_fields.is_empty()
            && self.activity_kinds.is_empty()
            && self.work_orders.is_empty()
            && self.reminder_sets.is_empty()
            && self.roles.is_empty()
            && self.whatsapp_templates.is_empty()
            && self.settings.is_empty()
    }
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The top-level keys of two JSON objects whose values differ, minus `skip`.
fn changed_keys(before: &Value, after: &Value, skip: &[&str]) -> Vec<String> {
    let empty = serde_json::Map::new();
    let a = before.as_object().unwrap_or(&empty);
    let b = after.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| !skip.contains(&k.as_str()) && a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Compares two lists of items keyed by `key`, in the order of `after` (then removed ones).
fn compare<T: Serialize>(
    before: &[T],
    after: &[T],
    key: impl Fn(&T) -> String,
    skip: &[&str],
) -> Vec<ItemChange> {
    let mut out = Vec::new();
    for item in after {
        let id = key(item);
        let now = to_json(item);
        match before.iter().find(|b| key(b) == id) {
            None => out.push(ItemChange {
                id,
                change: Change::Added,
                keys: Vec::new(),
                before: None,
                after: Some(now),
            }),
            Some(old) => {
                let was = to_json(old);
                let keys = changed_keys(&was, &now, skip);
                if !keys.is_empty() {
                    out.push(ItemChange {
                        id,
                        change: Change::Changed,
                        keys,
                        before: Some(was),
                        after: Some(now),
                    });
                }
            }
        }
    }
    for item in before {
        let id = key(item);
        if !after.iter().any(|a| key(a) == id) {
            out.push(ItemChange {
                id,
                change: Change::Removed,
                keys: Vec::new(),
                before: Some(to_json(item)),
                after: None,
            });
        }
    }
    out
}

/// Actions are compared by position and kind: `#0 notify`, `#1 conversion_event`.
fn compare_actions(before: &Value, after: &Value) -> Vec<ItemChange> {
    let list = |v: &Value| -> Vec<(String, Value)> {
        v.get("actions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .enumerate()
                    .map(|(i, action)| {
                        let kind = action
                            .as_object()
                            .and_then(|o| o.keys().next().cloned())
                            .unwrap_or_default();
                        (format!("#{i} {kind}"), action.clone())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (a, b) = (list(before), list(after));
    let mut out = Vec::new();
    for (id, now) in &b {
        match a.iter().find(|(k, _)| k == id) {
            None => out.push(ItemChange {
                id: id.clone(),
                change: Change::Added,
                keys: Vec::new(),
                before: None,
                after: Some(now.clone()),
            }),
            Some((_, was)) if was != now => out.push(ItemChange {
                id: id.clone(),
                change: Change::Changed,
                keys: Vec::new(),
                before: Some(was.clone()),
                after: Some(now.clone()),
            }),
            Some(_) => {}
        }
    }
    for (id, was) in &a {
        if !b.iter().any(|(k, _)| k == id) {
            out.push(ItemChange {
                id: id.clone(),
                change: Change::Removed,
                keys: Vec::new(),
                before: Some(was.clone()),
                after: None,
            });
        }
    }
    out
}

/// What changed from `old` to `new`.
pub fn diff(old: &Definitions, new: &Definitions) -> Diff {
    let mut files = FileChanges::default();
    for (path, content) in new.sources.files() {
        match old.sources.get(path) {
            None => files.added.push(path.to_string()),
            Some(before) if before != content => files.changed.push(path.to_string()),
            Some(_) => {}
        }
    }
    for (path, _) in old.sources.files() {
        if new.sources.get(path).is_none() {
            files.removed.push(path.to_string());
        }
    }

    let mut pipelines = Vec::new();
    for p in &new.pipelines {
        let id = p.id.as_str().to_string();
        let Some(o) = old.pipeline(&id) else {
            pipelines.push(PipelineChange {
                id,
                change: Change::Added,
                keys: Vec::new(),
                stages: compare(&[], &p.stages, |s| s.id.as_str().to_string(), &[]),
                transitions: Vec::new(),
            });
            continue;
        };
        let keys = changed_keys(&to_json(o), &to_json(p), &["id", "stages", "transitions"]);
        let stages = compare(&o.stages, &p.stages, |s| s.id.as_str().to_string(), &[]);
        let transition_key =
            |t: &crate::definitions::Transition| format!("{}→{}", t.from.as_str(), t.to.as_str());
        let transitions = compare(&o.transitions, &p.transitions, transition_key, &[])
            .into_iter()
            .map(|item| {
                let actions = match (&item.before, &item.after) {
                    (Some(b), Some(a)) => compare_actions(b, a),
                    _ => Vec::new(),
                };
                TransitionChange { item, actions }
            })
            .collect::<Vec<_>>();
        if !keys.is_empty() || !stages.is_empty() || !transitions.is_empty() {
            pipelines.push(PipelineChange {
                id,
                change: Change::Changed,
                keys,
                stages,
                transitions,
            });
        }
    }
    for o in &old.pipelines {
        if new.pipeline(o.id.as_str()).is_none() {
            pipelines.push(PipelineChange {
                id: o.id.as_str().to_string(),
                change: Change::Removed,
                keys: Vec::new(),
                stages: Vec::new(),
                transitions: Vec::new(),
            });
        }
    }

    let mut settings = Vec::new();
    for (id, before, after) in [
        ("intake", to_json(&old.intake), to_json(&new.intake)),
        ("calendar", to_json(&old.calendar), to_json(&new.calendar)),
    ] {
        if before != after {
            settings.push(ItemChange {
                id: id.into(),
                change: Change::Changed,
                keys: changed_keys(&before, &after, &[]),
                before: Some(before),
                after: Some(after),
            });
        }
    }

    Diff {
        from: old.version.clone(),
        to: new.version.clone(),
        files,
        pipelines,
        customer_fields: compare(
            &old.customer_fields,
            &new.customer_fields,
            |f| f.id.as_str().into(),
            &[],
        ),
        card_fields: compare(
            &old.card_fields,
            &new.card_fields,
            |f| f.id.as_str().into(),
            &[],
        ),
        activity_kinds: compare(
            &old.activity_kinds,
            &new.activity_kinds,
            |a| a.id.as_str().into(),
            &[],
        ),
        work_orders: compare(
            &old.work_orders,
            &new.work_orders,
            |w| w.id.as_str().into(),
            &[],
        ),
        reminder_sets: compare(
            &old.reminder_sets,
            &new.reminder_sets,
            |r| r.id.as_str().into(),
            &[],
        ),
        roles: compare(&old.roles, &new.roles, |r| r.id.as_str().into(), &[]),
        whatsapp_templates: compare(
            &old.whatsapp_templates,
            &new.whatsapp_templates,
            |w| w.name.as_str().into(),
            &[],
        ),
        settings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::SourceSet;

    fn load(set: SourceSet) -> Definitions {
        let report = Definitions::load(set);
        assert!(!report.has_errors(), "{:?}", report.diagnostics);
        report.definitions.expect("loads")
    }

    fn edited(path: &str, from: &str, to: &str) -> SourceSet {
        let mut set = SourceSet::embedded();
        let text = String::from_utf8(set.get(path).expect("shipped file").to_vec()).unwrap();
        assert!(text.contains(from), "{path} has no `{from}`");
        set.insert(path, text.replacen(from, to, 1));
        set
    }

    #[test]
    fn the_same_set_has_no_differences() {
        let a = load(SourceSet::embedded());
        let b = load(SourceSet::embedded());
        let d = diff(&a, &b);
        assert!(d.is_empty());
        assert!(d.files.changed.is_empty() && d.files.added.is_empty());
    }

    #[test]
    fn a_comment_changes_a_file_but_no_definition() {
        let a = load(SourceSet::embedded());
        let b = load(edited("workflows/sales.yaml", "\n", "\n# a comment\n"));
        let d = diff(&a, &b);
        assert_eq!(d.files.changed, ["workflows/sales.yaml"]);
        assert!(d.is_empty(), "{:#?}", d.pipelines);
    }

    #[test]
    fn a_changed_stage_name_is_listed_with_the_key_that_changed() {
        let a = load(SourceSet::embedded());
        let b = load(edited(
            "workflows/sales.yaml",
            "name: {tr: Randevu, en: Appointment}",
            "name: {tr: Randevu Alındı, en: Appointment booked}",
        ));
        let d = diff(&a, &b);
        let sales = d
            .pipelines
            .iter()
            .find(|p| p.id == "sales")
            .expect("sales changed");
        let stage = sales
            .stages
            .iter()
            .find(|s| s.id == "randevu")
            .expect("randevu changed");
        assert_eq!(stage.change, Change::Changed);
        assert_eq!(stage.keys, ["name"]);
        assert_eq!(
            stage.after.as_ref().unwrap()["name"]["tr"],
            "Randevu Alındı"
        );
    }
}
