//! Definitions: YAML pipelines, work orders, reminder sets and roles, plus the Rhai rules
//! and minijinja templates they reference (SPEC §3).
//!
//! # Layout
//! - [`source`]: the in-memory set of files (relative path → bytes) from disk, from the
//!   binary, or later from the database; its hash is the version id.
//! - [`model`]: the typed YAML model (`deny_unknown_fields`, externally tagged actions).
//! - [`due`]: the due-time expression grammar.
//! - [`diagnostic`]: compiler-style diagnostics.
//! - `validate`: parsing of every file and all cross-file checks.
//! - [`cli`]: `akis check` and `akis schema`.
//!
//! Loading must never panic on any input and must report every problem of a run; a set
//! with errors is refused as a whole, so the running version keeps working.

pub mod diagnostic;
pub mod due;
pub mod live;
pub mod model;
pub mod source;
mod validate;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use diagnostic::{Diagnostic, Pos, Severity};
pub use live::LiveDefinitions;
pub use model::*;
pub use source::SourceSet;

use crate::rules::Rules;

/// A loaded, validated definition set.
pub struct Definitions {
    /// Hex SHA-256 over the sorted relative paths and contents of every file.
    pub version: String,
    pub pipelines: Vec<Pipeline>,
    /// Where new leads go (always present in a valid set).
    pub intake: Intake,
    pub customer_fields: Vec<FieldDef>,
    pub card_fields: Vec<FieldDef>,
    pub activity_kinds: Vec<ActivityKind>,
    pub work_orders: Vec<WorkOrderDef>,
    pub reminder_sets: Vec<ReminderSet>,
    pub roles: Vec<Role>,
    pub whatsapp_templates: Vec<WhatsappTemplateDef>,
    pub calendar: Option<Calendar>,
    pub schedules: Vec<ScheduleDef>,
    /// Every compiled rule file.
    pub rules: Arc<Rules>,
    /// Every message template, named by its path under `templates/`
    /// (`messages/new_lead.tr.txt`).
    pub templates: minijinja::Environment<'static>,
    /// The files this set was loaded from (stored by the runtime as the version's content).
    pub sources: SourceSet,
}

impl fmt::Debug for Definitions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Definitions")
            .field("version", &self.version)
            .field(
                "pipelines",
                &self
                    .pipelines
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// The outcome of a load: the set when there were no errors, and every diagnostic.
#[derive(Debug)]
pub struct LoadReport {
    pub definitions: Option<Definitions>,
    /// Errors and warnings, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadReport {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Built-in card/customer fields every card has, with their types.
pub const BUILTIN_FIELDS: &[(&str, FieldType)] = &[
    ("name", FieldType::Text),
    ("phone", FieldType::Phone),
    ("email", FieldType::Email),
    ("source", FieldType::Text),
    ("campaign", FieldType::Text),
    ("owners", FieldType::Text),
    ("tags", FieldType::Text),
    ("stage", FieldType::Text),
    ("emotional_score", FieldType::Number),
    ("logical_score", FieldType::Number),
    ("unread_messages", FieldType::Number),
    ("created_at", FieldType::Datetime),
    ("updated_at", FieldType::Datetime),
    ("last_contact_at", FieldType::Datetime),
    ("stage_entered_at", FieldType::Datetime),
    ("next_reminder_at", FieldType::Datetime),
];

impl Definitions {
    /// Loads and validates a source set. Never panics, whatever the input.
    pub fn load(sources: SourceSet) -> LoadReport {
        validate::load(sources)
    }

    /// Loads the set the server runs: `dir` when it holds a `workflows/` folder, otherwise
    /// the defaults embedded in the binary. Ok carries the warnings; Err every error.
    pub fn load_for_server(
        dir: &Path,
    ) -> Result<(Arc<Definitions>, Vec<Diagnostic>), Vec<Diagnostic>> {
        let sources = if dir.join("workflows").is_dir() {
            SourceSet::from_dir(dir).map_err(|e| {
                vec![Diagnostic::error(
                    &dir.display().to_string(),
                    Pos::new(1, 1),
                    format!("cannot read the definitions folder: {e}"),
                )]
            })?
        } else {
            tracing::info!(dir = %dir.display(), "no workflows/ folder; using the definitions embedded in the binary");
            SourceSet::embedded()
        };
        let report = Self::load(sources);
        match report.definitions {
            Some(defs) if !report.diagnostics.iter().any(Diagnostic::is_error) => {
                Ok((Arc::new(defs), report.diagnostics))
            }
            _ => Err(report
                .diagnostics
                .into_iter()
                .filter(Diagnostic::is_error)
                .collect()),
        }
    }

    pub fn pipeline(&self, id: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.id.as_str() == id)
    }

    /// The pipeline a new lead from `source` enters.
    pub fn pipeline_for_source(&self, source: &str) -> Option<&Pipeline> {
        let id = self
            .intake
            .by_source
            .iter()
            .find(|r| r.source.as_str() == source)
            .map_or(&self.intake.default_pipeline, |r| &r.pipeline);
        self.pipeline(id.as_str())
    }

    pub fn role(&self, id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.id.as_str() == id)
    }

    pub fn work_order(&self, id: &str) -> Option<&WorkOrderDef> {
        self.work_orders.iter().find(|w| w.id.as_str() == id)
    }

    /// Fields that must be filled before a card enters `stage` of `pipeline`: the stage's
    /// `required_fields` plus every custom field whose `required_on_entry` names the stage.
    pub fn required_on_entry(&self, pipeline: &str, stage: &str) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .pipeline(pipeline)
            .and_then(|p| p.stage(stage))
            .map(|s| s.required_fields.iter().map(|f| f.as_str()).collect())
            .unwrap_or_default();
        for f in self.customer_fields.iter().chain(&self.card_fields) {
            if f.required_on_entry.iter().any(|s| s.as_str() == stage)
                && !out.contains(&f.id.as_str())
            {
                out.push(f.id.as_str());
            }
        }
        out
    }

    /// Renders message template `name` in `lang` (`tr`/`en`) with `ctx`.
    pub fn render_message(
        &self,
        name: &str,
        lang: &str,
        ctx: minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        self.templates
            .get_template(&format!("messages/{name}.{lang}.txt"))?
            .render(ctx)
    }
}

impl Pipeline {
    pub fn initial_stage(&self) -> Option<&Stage> {
        self.stages.iter().find(|s| s.initial)
    }

    pub fn stage(&self, id: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id.as_str() == id)
    }

    /// Where the cards of `old`, a stage this pipeline no longer has, go: the stage that
    /// says `renamed_from: [old]`, or the target of a `stage_migrations` entry.
    pub fn stage_mapping(&self, old: &str) -> Option<&str> {
        self.stages
            .iter()
            .find(|s| s.renamed_from.iter().any(|r| r.as_str() == old))
            .map(|s| s.id.as_str())
            .or_else(|| {
                self.stage_migrations
                    .iter()
                    .find(|m| m.from.as_str() == old)
                    .map(|m| m.to.as_str())
            })
    }

    pub fn transition(&self, from: &str, to: &str) -> Option<&Transition> {
        self.transitions
            .iter()
            .find(|t| t.from.as_str() == from && t.to.as_str() == to)
    }
}

/// The JSON Schema of a file under `workflows/`, generated from [`DefinitionFile`].
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(DefinitionFile);
    serde_json::to_string_pretty(&schema).unwrap_or_else(|_| String::from("{}"))
}

pub mod cli {
    //! `akis check [DIR]` and `akis schema`.
    use std::path::Path;
    use std::process::ExitCode;

    use super::{Definitions, Diagnostic, SourceSet};

    /// `akis check DIR`: prints diagnostics to stderr; 0 when valid (warnings allowed), 1 on errors.
    pub fn check(dir: &Path) -> ExitCode {
        let (code, text) = check_report(dir);
        eprint!("{text}");
        code
    }

    /// What `check` prints, and its exit code.
    pub fn check_report(dir: &Path) -> (ExitCode, String) {
        let display = |d: &Diagnostic| {
            let mut d = d.clone();
            if dir != Path::new(".") && dir != Path::new("") {
                d.file = dir.join(&d.file).display().to_string();
            }
            d.to_string()
        };
        if !dir.join("workflows").is_dir() {
            return (
                ExitCode::FAILURE,
                format!(
                    "{}: error: no `workflows/` folder here; point `akis check` at the folder holding workflows/, rules/ and templates/\n",
                    dir.display()
                ),
            );
        }
        let sources = match SourceSet::from_dir(dir) {
            Ok(s) => s,
            Err(e) => {
                return (
                    ExitCode::FAILURE,
                    format!("{}: error: cannot read: {e}\n", dir.display()),
                );
            }
        };
        let files = sources.len();
        let report = Definitions::load(sources);
        let mut out = String::new();
        for d in &report.diagnostics {
            out.push_str(&display(d));
            out.push('\n');
        }
        let errors = report.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = report.diagnostics.len() - errors;
        if errors > 0 {
            out.push_str(&format!(
                "error: {errors} error(s), {warnings} warning(s) in {files} file(s); the definitions were not accepted\n"
            ));
            (ExitCode::FAILURE, out)
        } else {
            let version = report
                .definitions
                .as_ref()
                .map(|d| d.version.clone())
                .unwrap_or_default();
            out.push_str(&format!(
                "ok: {files} file(s), {warnings} warning(s), version {version}\n"
            ));
            (ExitCode::SUCCESS, out)
        }
    }

    /// `akis schema`: the JSON Schema of the YAML files.
    pub fn schema() -> String {
        super::json_schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loaded_set_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Definitions>();
        assert_send_sync::<Arc<Rules>>();
    }

    #[test]
    fn new_leads_are_routed_by_source_with_a_default() {
        let defs = Definitions::load(SourceSet::embedded())
            .definitions
            .expect("shipped set loads");
        assert_eq!(
            defs.pipeline_for_source("web_form").unwrap().id.as_str(),
            "sales"
        );
        assert_eq!(
            defs.pipeline_for_source("unknown").unwrap().id.as_str(),
            "sales"
        );
        let sales = defs.role("sales").unwrap();
        assert_eq!(sales.scope, Scope::Own);
        assert!(sales.permissions.allows(Module::Pipeline, Permission::Edit));
        assert!(!sales.permissions.allows(Module::Admin, Permission::View));
        assert_eq!(
            defs.required_on_entry("sales", "kapora"),
            ["deposit_amount"]
        );
        assert_eq!(
            defs.required_on_entry("sales", "randevu"),
            ["appointment_at"]
        );
        assert!(defs.required_on_entry("sales", "potansiyel").is_empty());
    }
}
