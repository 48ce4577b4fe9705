//! Parsing of every file in a [`SourceSet`] and the cross-file checks.
//!
//! Each phase records diagnostics and goes on, so one run reports every problem:
//! 1. YAML files → [`DefinitionFile`]s (syntax and shape errors at their own line/col),
//!    Rhai files → compiled scripts, message templates → parsed minijinja templates;
//! 2. the sections of all files are merged and every reference is resolved.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::str::FromStr;
use std::sync::Arc;

use super::diagnostic::{self, Diagnostic, Pos};
use super::due::{self, Due, DueBase};
use super::model::*;
use super::source::SourceSet;
use super::{BUILTIN_FIELDS, Definitions, LoadReport};
use crate::rules::{RuleRef, Rules};

/// Largest definition file accepted (bytes).
const MAX_FILE_BYTES: usize = 1024 * 1024;

/// What a referenced rule is used for (documented in rules/README.md).
#[derive(Debug, Clone, Copy)]
enum RuleKind {
    Guard,
    Scoring,
    Assignment,
    Badge,
    Outcome,
}

impl RuleKind {
    fn name(self) -> &'static str {
        match self {
            RuleKind::Guard => "guard",
            RuleKind::Scoring => "scoring",
            RuleKind::Assignment => "assignment",
            RuleKind::Badge => "badge",
            RuleKind::Outcome => "outcome",
        }
    }
}

struct Ctx<'a> {
    diags: Vec<Diagnostic>,
    /// Source text of each YAML file (for column fix-ups of quoted scalars).
    yaml_text: HashMap<String, &'a str>,
    rules: Rules,
    /// Rule files that failed to compile (references to them are not reported again).
    broken_rules: BTreeSet<String>,
    used_rules: BTreeSet<String>,
    templates: minijinja::Environment<'static>,
    broken_templates: BTreeSet<String>,
    message_names: BTreeSet<String>,
}

impl Ctx<'_> {
    fn error(&mut self, file: &str, pos: Pos, msg: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(file, fix_pos(pos), msg));
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    fn warning(&mut self, file: &str, pos: Pos, msg: impl Into<String>) -> &mut Diagnostic {
        self.diags
            .push(Diagnostic::warning(file, fix_pos(pos), msg));
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    /// Column where the content of the scalar at `pos` starts (after an opening quote).
    fn content_col(&self, file: &str, pos: Pos) -> u32 {
        let Some(text) = self.yaml_text.get(file) else {
            return pos.col;
        };
        let line = text.lines().nth(pos.line.saturating_sub(1) as usize);
        match line.and_then(|l| l.chars().nth(pos.col.saturating_sub(1) as usize)) {
            Some('"') | Some('\'') => pos.col + 1,
            _ => pos.col,
        }
    }
}

/// Diagnostics without a known position point at the start of the file.
fn fix_pos(pos: Pos) -> Pos {
    match pos {
        Pos { line: 0, .. } => Pos::new(1, 1),
        Pos { line, col: 0 } => Pos::new(line, 1),
        _ => pos,
    }
}

fn set_help(d: &mut Diagnostic, help: Option<String>) {
    if let Some(h) = help {
        d.help = Some(h);
    }
}

fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    diagnostic::did_you_mean(name, candidates).map(|b| format!("did you mean `{b}`?"))
}

pub(super) fn load(sources: SourceSet) -> LoadReport {
    let version = sources.version();
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut early = Vec::new();
    for (path, bytes) in sources.files() {
        if bytes.len() > MAX_FILE_BYTES {
            early.push(Diagnostic::error(
                path,
                Pos::new(1, 1),
                format!("file is larger than {} KiB", MAX_FILE_BYTES / 1024),
            ));
            continue;
        }
        match std::str::from_utf8(bytes) {
            Ok(t) => texts.push((path.to_owned(), t.to_owned())),
            Err(e) => early.push(Diagnostic::error(
                path,
                Pos::new(1, 1),
                format!("file is not valid UTF-8 (byte {})", e.valid_up_to()),
            )),
        }
    }
    let mut ctx = Ctx {
        diags: early,
        yaml_text: HashMap::new(),
        rules: Rules::new(),
        broken_rules: BTreeSet::new(),
        used_rules: BTreeSet::new(),
        templates: minijinja::Environment::new(),
        broken_templates: BTreeSet::new(),
        message_names: BTreeSet::new(),
    };
    let mut files: Vec<(String, DefinitionFile)> = Vec::new();
    let mut yaml_failed = false;
    for (path, text) in &texts {
        if let Some(rel) = path.strip_prefix("workflows/") {
            if rel.ends_with(".yaml") || rel.ends_with(".yml") {
                ctx.yaml_text.insert(path.clone(), text.as_str());
                match parse_yaml(&mut ctx, path, text) {
                    Some(f) => files.push((path.clone(), f)),
                    None => yaml_failed = true,
                }
            }
        } else if let Some(rel) = path.strip_prefix("rules/") {
            if rel.ends_with(".rhai")
                && let Err(e) = ctx.rules.compile(rel, text)
            {
                ctx.broken_rules.insert(rel.to_owned());
                ctx.error(
                    path,
                    Pos::new(e.line, e.col),
                    format!("Rhai: {}", e.message),
                );
            }
        } else if let Some(rel) = path.strip_prefix("templates/")
            && rel.starts_with("messages/")
            && rel.ends_with(".txt")
        {
            if let Some(name) = rel.strip_prefix("messages/").and_then(|r| {
                r.strip_suffix(".tr.txt")
                    .or_else(|| r.strip_suffix(".en.txt"))
            }) {
                ctx.message_names.insert(name.to_owned());
            }
            if let Err(e) = ctx
                .templates
                .add_template_owned(rel.to_owned(), text.clone())
            {
                ctx.broken_templates.insert(rel.to_owned());
                let pos = template_error_pos(&e, text);
                ctx.error(
                    path,
                    pos,
                    format!("template: {}", e.detail().unwrap_or("syntax error")),
                );
            }
        }
    }

    let merged = merge(&mut ctx, files);
    // Like a compiler after a syntax error: cross-file checks would only report things
    // declared in the file that did not parse, so they wait for the next run.
    if !yaml_failed {
        check(&mut ctx, &merged);
    }

    // An unreferenced rule file is probably a mistake (or a leftover).
    let unused: Vec<String> = ctx
        .rules
        .scripts()
        .map(|s| s.name.clone())
        .filter(|n| !yaml_failed && !ctx.used_rules.contains(n))
        .collect();
    for name in unused {
        ctx.warning(
            &format!("rules/{name}"),
            Pos::new(1, 1),
            "rule file is not referenced by any definition",
        );
    }

    let mut diagnostics = ctx.diags;
    diagnostic::sort(&mut diagnostics);
    let has_errors = diagnostics.iter().any(Diagnostic::is_error);
    let definitions = match (has_errors, merged.intake) {
        (false, Some((_, intake))) => Some(Definitions {
            version,
            pipelines: merged
                .pipelines
                .into_iter()
                .map(|(file, mut p)| {
                    p.file = file;
                    p
                })
                .collect(),
            intake,
            customer_fields: merged.customer_fields.into_iter().map(|(_, f)| f).collect(),
            card_fields: merged.card_fields.into_iter().map(|(_, f)| f).collect(),
            activity_kinds: merged.activity_kinds.into_iter().map(|(_, a)| a).collect(),
            work_orders: merged.work_orders.into_iter().map(|(_, w)| w).collect(),
            reminder_sets: merged.reminder_sets.into_iter().map(|(_, r)| r).collect(),
            roles: merged
                .roles
                .into_iter()
                .map(|(file, mut r)| {
                    r.file = file;
                    r
                })
                .collect(),
            whatsapp_templates: merged
                .whatsapp_templates
                .into_iter()
                .map(|(_, w)| w)
                .collect(),
            calendar: merged.calendar.map(|(_, c)| c),
            schedules: merged.schedules.into_iter().map(|(_, s)| s).collect(),
            rules: Arc::new(ctx.rules),
            templates: ctx.templates,
            sources,
        }),
        _ => None,
    };
    LoadReport {
        definitions,
        diagnostics,
    }
}

fn template_error_pos(e: &minijinja::Error, text: &str) -> Pos {
    let line = e.line().unwrap_or(1) as u32;
    let col = e
        .range()
        .and_then(|r| text.get(..r.start))
        .map(|before| before.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1)
        .unwrap_or(1);
    Pos::new(line, col)
}

fn parse_yaml(ctx: &mut Ctx<'_>, path: &str, text: &str) -> Option<DefinitionFile> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    match serde_saphyr::from_str_with_options::<DefinitionFile>(text, options) {
        Ok(f) => Some(f),
        Err(e) => {
            let (line, col) = e
                .location()
                .map(|l| (l.line() as u32, l.column() as u32))
                .unwrap_or((1, 1));
            let mut msg = e.without_snippet().to_string();
            // serde-saphyr appends " at line L, column C"; the diagnostic carries it already.
            if let Some(i) = msg.rfind(" at line ") {
                msg.truncate(i);
            }
            let mut msg = msg.trim_start_matches("error: ").to_owned();
            for (raw, nice) in [
                ("invalid u32", "expected a whole number (0 or more)"),
                ("invalid u64", "expected a whole number (0 or more)"),
                ("invalid i64", "expected a whole number"),
                ("invalid f64", "expected a number"),
                ("invalid bool", "expected `true` or `false`"),
            ] {
                if msg == raw {
                    msg = nice.to_owned();
                }
            }
            let d = ctx.error(path, Pos::new(line, col), msg.clone());
            if msg.starts_with("unknown field") || msg.starts_with("unknown variant") {
                d.help = Some("see workflows/README.md for every key, or run `akis schema` for editor completion".into());
            }
            None
        }
    }
}

// ------------------------------------------------------------------ merge

type Item<T> = (String, T);

#[derive(Default)]
struct Merged {
    pipelines: Vec<Item<Pipeline>>,
    intake: Option<Item<Intake>>,
    customer_fields: Vec<Item<FieldDef>>,
    card_fields: Vec<Item<FieldDef>>,
    activity_kinds: Vec<Item<ActivityKind>>,
    work_orders: Vec<Item<WorkOrderDef>>,
    reminder_sets: Vec<Item<ReminderSet>>,
    roles: Vec<Item<Role>>,
    whatsapp_templates: Vec<Item<WhatsappTemplateDef>>,
    calendar: Option<Item<Calendar>>,
    schedules: Vec<Item<ScheduleDef>>,
}

fn tag<T>(path: &str, items: Vec<T>) -> Vec<Item<T>> {
    items.into_iter().map(|x| (path.to_owned(), x)).collect()
}

fn merge(ctx: &mut Ctx<'_>, files: Vec<(String, DefinitionFile)>) -> Merged {
    let mut m = Merged::default();
    let mut intake_at: Option<(String, Pos)> = None;
    let mut calendar_at: Option<(String, Pos)> = None;
    for (path, f) in files {
        m.pipelines.extend(tag(&path, f.pipelines));
        m.customer_fields.extend(tag(&path, f.customer_fields));
        m.card_fields.extend(tag(&path, f.card_fields));
        m.activity_kinds.extend(tag(&path, f.activity_kinds));
        m.work_orders.extend(tag(&path, f.work_orders));
        m.reminder_sets.extend(tag(&path, f.reminder_sets));
        m.schedules.extend(tag(&path, f.schedules));
        m.roles.extend(tag(&path, f.roles));
        m.whatsapp_templates
            .extend(tag(&path, f.whatsapp_templates));
        if let Some(intake) = f.intake {
            if let Some((first, p)) = &intake_at {
                let help = format!("first declared at {first}:{}:{}", p.line, p.col);
                ctx.error(&path, intake.pos, "`intake` is declared more than once")
                    .help = Some(help);
            } else {
                intake_at = Some((path.clone(), intake.pos));
                m.intake = Some((path.clone(), intake.value));
            }
        }
        if let Some(cal) = f.calendar {
            if let Some((first, p)) = &calendar_at {
                let help = format!("first declared at {first}:{}:{}", p.line, p.col);
                ctx.error(&path, cal.pos, "`calendar` is declared more than once")
                    .help = Some(help);
            } else {
                calendar_at = Some((path.clone(), cal.pos));
                m.calendar = Some((path.clone(), cal.value));
            }
        }
    }
    m
}

/// Reports duplicates among `(file, id)` pairs.
fn unique<'a>(
    ctx: &mut Ctx<'_>,
    what: &str,
    ids: impl IntoIterator<Item = (&'a str, &'a At<String>)>,
) {
    let mut seen: BTreeMap<&str, (&str, Pos)> = BTreeMap::new();
    for (file, id) in ids {
        if let Some((f0, p0)) = seen.get(id.value.as_str()) {
            let help = format!("first defined at {f0}:{}:{}", p0.line, p0.col);
            ctx.error(file, id.pos, format!("duplicate {what} id `{}`", id.value))
                .help = Some(help);
        } else {
            seen.insert(id.value.as_str(), (file, id.pos));
        }
    }
}

fn s<T: ToString>(at: &At<T>) -> At<String> {
    At {
        value: at.value.to_string(),
        pos: at.pos,
    }
}

// ------------------------------------------------------------------ checks

/// Everything a reference may point at, gathered once.
struct Names {
    pipelines: BTreeMap<String, BTreeSet<String>>,
    all_stages: BTreeSet<String>,
    fields: BTreeMap<String, FieldType>,
    roles: BTreeSet<String>,
    activities: BTreeMap<String, BTreeSet<String>>,
    work_orders: BTreeSet<String>,
    whatsapp: BTreeMap<String, Vec<String>>,
}

fn check(ctx: &mut Ctx<'_>, m: &Merged) {
    // Ids are unique.
    let ids: Vec<_> = m
        .pipelines
        .iter()
        .map(|(f, p)| (f.as_str(), s(&p.id)))
        .collect();
    unique(ctx, "pipeline", ids.iter().map(|(f, i)| (*f, i)));
    let ids: Vec<_> = m
        .customer_fields
        .iter()
        .chain(&m.card_fields)
        .map(|(f, d)| (f.as_str(), s(&d.id)))
        .collect();
    unique(ctx, "field", ids.iter().map(|(f, i)| (*f, i)));
    for (f, id) in &ids {
        if BUILTIN_FIELDS.iter().any(|(b, _)| *b == id.value) {
            ctx.error(
                f,
                id.pos,
                format!("field id `{}` is a built-in field", id.value),
            );
        }
    }
    let ids: Vec<_> = m
        .activity_kinds
        .iter()
        .map(|(f, a)| (f.as_str(), s(&a.id)))
        .collect();
    unique(ctx, "activity kind", ids.iter().map(|(f, i)| (*f, i)));
    let ids: Vec<_> = m
        .work_orders
        .iter()
        .map(|(f, w)| (f.as_str(), s(&w.id)))
        .collect();
    unique(ctx, "work order", ids.iter().map(|(f, i)| (*f, i)));
    let ids: Vec<_> = m
        .reminder_sets
        .iter()
        .map(|(f, r)| (f.as_str(), s(&r.id)))
        .collect();
    unique(ctx, "reminder set", ids.iter().map(|(f, i)| (*f, i)));
    let ids: Vec<_> = m
        .reminder_sets
        .iter()
        .flat_map(|(f, r)| r.reminders.iter().map(move |x| (f.as_str(), s(&x.id))))
        .collect();
    unique(ctx, "reminder", ids.iter().map(|(f, i)| (*f, i)));
    let ids: Vec<_> = m
        .roles
        .iter()
        .map(|(f, r)| (f.as_str(), s(&r.id)))
        .collect();
    unique(ctx, "role", ids.iter().map(|(f, i)| (*f, i)));
    let ids: Vec<_> = m
        .whatsapp_templates
        .iter()
        .map(|(f, w)| (f.as_str(), s(&w.name)))
        .collect();
    unique(ctx, "WhatsApp template", ids.iter().map(|(f, i)| (*f, i)));

    let names = Names {
        pipelines: m
            .pipelines
            .iter()
            .map(|(_, p)| {
                (
                    p.id.to_string(),
                    p.stages.iter().map(|s| s.id.to_string()).collect(),
                )
            })
            .collect(),
        all_stages: m
            .pipelines
            .iter()
            .flat_map(|(_, p)| p.stages.iter().map(|s| s.id.to_string()))
            .collect(),
        fields: BUILTIN_FIELDS
            .iter()
            .map(|(n, t)| ((*n).to_owned(), *t))
            .chain(
                m.customer_fields
                    .iter()
                    .chain(&m.card_fields)
                    .map(|(_, f)| (f.id.to_string(), f.kind)),
            )
            .collect(),
        roles: m.roles.iter().map(|(_, r)| r.id.to_string()).collect(),
        activities: m
            .activity_kinds
            .iter()
            .map(|(_, a)| {
                (
                    a.id.to_string(),
                    a.outcomes.iter().map(|o| o.id.to_string()).collect(),
                )
            })
            .collect(),
        work_orders: m
            .work_orders
            .iter()
            .map(|(_, w)| w.id.to_string())
            .collect(),
        whatsapp: m
            .whatsapp_templates
            .iter()
            .map(|(_, w)| {
                (
                    w.name.to_string(),
                    w.parameters.iter().map(|p| p.value.clone()).collect(),
                )
            })
            .collect(),
    };

    if m.pipelines.is_empty() {
        ctx.error(
            "workflows",
            Pos::new(1, 1),
            "the definition set declares no pipeline",
        )
        .help = Some("add a file under workflows/ with a `pipelines:` section".into());
    }
    for (file, p) in &m.pipelines {
        check_pipeline(ctx, &names, file, p);
    }
    match &m.intake {
        Some((file, intake)) => {
            check_pipeline_ref(ctx, &names, file, &intake.default_pipeline);
            for r in &intake.by_source {
                check_pipeline_ref(ctx, &names, file, &r.pipeline);
            }
        }
        None if !m.pipelines.is_empty() => {
            let file = m.pipelines[0].0.clone();
            ctx.error(
                &file,
                Pos::new(1, 1),
                "no `intake` section: the set does not say which pipeline new leads enter",
            )
            .help = Some("add `intake: {default_pipeline: <pipeline id>}`".into());
        }
        None => {}
    }
    for (file, f) in m.customer_fields.iter().chain(&m.card_fields) {
        check_field(ctx, &names, file, f);
    }
    for (file, a) in &m.activity_kinds {
        let ids: Vec<_> = a.outcomes.iter().map(|o| s(&o.id)).collect();
        unique(ctx, "outcome", ids.iter().map(|i| (file.as_str(), i)));
        for o in &a.outcomes {
            if let Some(r) = &o.rule {
                check_rule(ctx, file, r, RuleKind::Outcome);
            }
            check_actions(ctx, &names, file, &o.actions);
        }
    }
    for (file, w) in &m.work_orders {
        check_work_order(ctx, &names, file, w);
    }
    for (file, set) in &m.reminder_sets {
        for r in &set.reminders {
            check_reminder(ctx, &names, file, r);
        }
    }
    for (file, w) in &m.whatsapp_templates {
        let params: Vec<_> = w.parameters.clone();
        unique(
            ctx,
            "WhatsApp template parameter",
            params.iter().map(|p| (file.as_str(), p)),
        );
    }
    let ids: Vec<_> = m
        .schedules
        .iter()
        .map(|(f, x)| (f.as_str(), s(&x.id)))
        .collect();
    unique(ctx, "schedule", ids.iter().map(|(f, i)| (*f, i)));
    for (file, s) in &m.schedules {
        if let Err(e) = s.cron.parse::<croner::Cron>() {
            let col = ctx.content_col(file, s.cron.pos);
            ctx.error(
                file,
                Pos::new(s.cron.pos.line, col),
                format!("bad cron expression `{}`: {e}", s.cron.value),
            )
            .help = Some(
                "write `minute hour day month weekday`, e.g. `*/5 * * * *` or `30 8 * * Mon-Fri`"
                    .into(),
            );
        }
    }
    if let Some((file, cal)) = &m.calendar {
        check_calendar(ctx, file, cal);
    }
}

fn check_pipeline_ref(ctx: &mut Ctx<'_>, names: &Names, file: &str, id: &At<PipelineId>) {
    if !names.pipelines.contains_key(id.as_str()) {
        let help = suggest(id.as_str(), names.pipelines.keys().map(String::as_str));
        let d = ctx.error(file, id.pos, format!("unknown pipeline `{}`", id.value));
        set_help(d, help);
    }
}

fn check_stage_in(
    ctx: &mut Ctx<'_>,
    stages: &BTreeSet<String>,
    file: &str,
    id: &At<StageId>,
    pipeline: &str,
) -> bool {
    if stages.contains(id.as_str()) {
        return true;
    }
    let help = suggest(id.as_str(), stages.iter().map(String::as_str));
    let d = ctx.error(
        file,
        id.pos,
        format!("unknown stage `{}` in pipeline `{pipeline}`", id.value),
    );
    set_help(d, help);
    false
}

fn check_field_ref(
    ctx: &mut Ctx<'_>,
    names: &Names,
    file: &str,
    id: &At<FieldId>,
) -> Option<FieldType> {
    if let Some(t) = names.fields.get(id.as_str()) {
        return Some(*t);
    }
    let help = suggest(id.as_str(), names.fields.keys().map(String::as_str))
        .or_else(|| Some("declare it under `customer_fields:` or `card_fields:`".into()));
    let d = ctx.error(file, id.pos, format!("unknown field `{}`", id.value));
    set_help(d, help);
    None
}

fn check_role_ref(ctx: &mut Ctx<'_>, names: &Names, file: &str, id: &At<RoleId>) {
    if !names.roles.contains(id.as_str()) {
        let help = suggest(id.as_str(), names.roles.iter().map(String::as_str));
        let d = ctx.error(file, id.pos, format!("unknown role `{}`", id.value));
        set_help(d, help);
    }
}

/// `renamed_from` and `stage_migrations` name stages that no longer exist, each once, and
/// map them onto stages that do.
fn check_stage_mappings<'a>(
    ctx: &mut Ctx<'_>,
    stages: &BTreeSet<String>,
    file: &str,
    p: &'a Pipeline,
) {
    let pid = p.id.as_str();
    let mut mapped: BTreeMap<&str, Pos> = BTreeMap::new();
    let mut claim = |ctx: &mut Ctx<'_>, old: &'a At<StageId>| {
        if stages.contains(old.as_str()) {
            ctx.error(
                file,
                old.pos,
                format!(
                    "stage `{}` still exists in pipeline `{pid}`; only a stage that is gone can be mapped",
                    old.value
                ),
            );
        } else if let Some(first) = mapped.get(old.as_str()) {
            let help = format!("first mapped at line {}", first.line);
            ctx.error(
                file,
                old.pos,
                format!("stage `{}` is mapped more than once", old.value),
            )
            .help = Some(help);
        } else {
            mapped.insert(old.as_str(), old.pos);
        }
    };
    for st in &p.stages {
        for old in &st.renamed_from {
            claim(ctx, old);
        }
    }
    for m in &p.stage_migrations {
        claim(ctx, &m.from);
        check_stage_in(ctx, stages, file, &m.to, pid);
    }
}

fn check_pipeline(ctx: &mut Ctx<'_>, names: &Names, file: &str, p: &Pipeline) {
    let pid = p.id.as_str();
    let ids: Vec<_> = p.stages.iter().map(|st| s(&st.id)).collect();
    unique(ctx, "stage", ids.iter().map(|i| (file, i)));
    let stages: BTreeSet<String> = p.stages.iter().map(|s| s.id.to_string()).collect();
    if p.stages.is_empty() {
        ctx.error(file, p.id.pos, format!("pipeline `{pid}` has no stages"));
        return;
    }
    let initials: Vec<&Stage> = p.stages.iter().filter(|s| s.initial).collect();
    match initials.as_slice() {
        [] => {
            ctx.error(
                file,
                p.id.pos,
                format!("pipeline `{pid}` has no initial stage"),
            )
            .help = Some(format!(
                "mark the stage new cards start in with `initial: true` (e.g. `{}`)",
                p.stages[0].id.value
            ));
        }
        [_] => {}
        [first, rest @ ..] => {
            for st in rest {
                let help = format!("`{}` is already the initial stage", first.id.value);
                ctx.error(
                    file,
                    st.id.pos,
                    format!("pipeline `{pid}` has more than one initial stage"),
                )
                .help = Some(help);
            }
        }
    }
    for st in &p.stages {
        if st.initial && st.terminal {
            ctx.error(
                file,
                st.id.pos,
                format!(
                    "stage `{}` cannot be both initial and terminal",
                    st.id.value
                ),
            );
        }
        if let Some(c) = &st.color
            && !is_color(c)
        {
            let col = ctx.content_col(file, c.pos);
            ctx.error(
                file,
                Pos::new(c.pos.line, col),
                format!("`{}` is not a colour", c.value),
            )
            .help = Some("write `#rrggbb` or `#rgb`, e.g. `#22c55e`".into());
        }
        if st.wip_limit == Some(0) {
            ctx.error(
                file,
                st.id.pos,
                "`wip_limit` must be at least 1 (leave it out for no limit)",
            );
        }
        for f in &st.required_fields {
            check_field_ref(ctx, names, file, f);
        }
    }
    let terminal: BTreeSet<&str> = p
        .stages
        .iter()
        .filter(|s| s.terminal)
        .map(|s| s.id.as_str())
        .collect();
    let mut seen_pairs: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut all_endpoints_known = true;
    for t in &p.transitions {
        let from_ok = check_stage_in(ctx, &stages, file, &t.from, pid);
        let to_ok = check_stage_in(ctx, &stages, file, &t.to, pid);
        all_endpoints_known &= from_ok && to_ok;
        if from_ok && terminal.contains(t.from.as_str()) {
            ctx.error(
                file,
                t.from.pos,
                format!(
                    "stage `{}` is terminal and cannot have outgoing transitions",
                    t.from.value
                ),
            )
            .help = Some("remove the transition or drop `terminal: true` from the stage".into());
        }
        if from_ok && to_ok && t.from.as_str() == t.to.as_str() {
            ctx.error(file, t.to.pos, "a transition must go to another stage");
        }
        if !seen_pairs.insert((t.from.as_str(), t.to.as_str())) {
            ctx.error(
                file,
                t.from.pos,
                format!("duplicate transition `{}` → `{}`", t.from.value, t.to.value),
            );
        }
        edges
            .entry(t.from.as_str())
            .or_default()
            .push(t.to.as_str());
        if let Some(g) = &t.guard {
            check_rule(ctx, file, g, RuleKind::Guard);
        }
        for f in &t.asks {
            check_field_ref(ctx, names, file, f);
        }
        check_actions(ctx, names, file, &t.actions);
    }
    // Every stage should be reachable from the initial stage (not worth saying while a
    // transition names an unknown stage: that error is the likely cause).
    if let ([initial], true) = (initials.as_slice(), all_endpoints_known) {
        let mut reached: BTreeSet<&str> = BTreeSet::new();
        let mut queue = VecDeque::from([initial.id.as_str()]);
        while let Some(s) = queue.pop_front() {
            if reached.insert(s) {
                queue.extend(edges.get(s).into_iter().flatten().copied());
            }
        }
        for st in &p.stages {
            if !reached.contains(st.id.as_str()) {
                ctx.warning(
                    file,
                    st.id.pos,
                    format!(
                        "stage `{}` cannot be reached from the initial stage `{}`",
                        st.id.value, initial.id.value
                    ),
                )
                .help = Some(format!("add a transition with `to: {}`", st.id.value));
            }
        }
    }
    check_stage_mappings(ctx, &stages, file, p);
    for f in &p.card.fields {
        check_field_ref(ctx, names, file, f);
    }
    if p.card.order.by.pos != Pos::FILE {
        check_field_ref(ctx, names, file, &p.card.order.by);
    }
    for b in &p.card.badges {
        check_rule(ctx, file, b, RuleKind::Badge);
    }
    if let Some(r) = &p.on_new_lead.scoring {
        check_rule(ctx, file, r, RuleKind::Scoring);
    }
    if let Some(r) = &p.on_new_lead.assignment {
        check_rule(ctx, file, r, RuleKind::Assignment);
    }
    if let Some(policy) = &p.on_return {
        let activity = match &policy.value {
            ReturnPolicy::Reopen { stage, activity } => {
                if check_stage_in(ctx, &stages, file, stage, pid)
                    && terminal.contains(stage.as_str())
                {
                    ctx.error(
                        file,
                        stage.pos,
                        format!(
                            "a returning lead cannot be reopened into terminal stage `{}`",
                            stage.value
                        ),
                    );
                }
                activity
            }
            ReturnPolicy::RecordOnly { activity } => activity,
        };
        check_activity_ref(ctx, names, file, activity);
    }
}

fn check_activity_ref(
    ctx: &mut Ctx<'_>,
    names: &Names,
    file: &str,
    id: &At<ActivityKindId>,
) -> bool {
    if names.activities.contains_key(id.as_str()) {
        return true;
    }
    let help = suggest(id.as_str(), names.activities.keys().map(String::as_str));
    let d = ctx.error(
        file,
        id.pos,
        format!("unknown activity kind `{}`", id.value),
    );
    set_help(d, help);
    false
}

fn is_color(c: &str) -> bool {
    let Some(hex) = c.strip_prefix('#') else {
        return false;
    };
    (hex.len() == 6 || hex.len() == 3) && hex.chars().all(|c| c.is_ascii_hexdigit())
}

fn check_field(ctx: &mut Ctx<'_>, names: &Names, file: &str, f: &FieldDef) {
    match (f.kind, f.options.is_empty()) {
        (FieldType::Choice, true) => {
            ctx.error(
                file,
                f.id.pos,
                format!("choice field `{}` has no `options`", f.id.value),
            );
        }
        (FieldType::Choice, false) => {
            let ids: Vec<_> = f.options.iter().map(|o| s(&o.id)).collect();
            unique(ctx, "option", ids.iter().map(|i| (file, i)));
        }
        (_, false) => {
            ctx.error(
                file,
                f.id.pos,
                format!(
                    "field `{}` has `options` but is not `type: choice`",
                    f.id.value
                ),
            );
        }
        (_, true) => {}
    }
    for st in &f.required_on_entry {
        if !names.all_stages.contains(st.as_str()) {
            let help = suggest(st.as_str(), names.all_stages.iter().map(String::as_str));
            let d = ctx.error(file, st.pos, format!("unknown stage `{}`", st.value));
            set_help(d, help);
        }
    }
}

fn check_work_order(ctx: &mut Ctx<'_>, names: &Names, file: &str, w: &WorkOrderDef) {
    let ids: Vec<_> = w.steps.iter().map(|st| s(&st.id)).collect();
    unique(ctx, "step", ids.iter().map(|i| (file, i)));
    if w.steps.is_empty() {
        ctx.error(
            file,
            w.id.pos,
            format!("work order `{}` has no steps", w.id.value),
        );
    }
    let step_ids: BTreeSet<&str> = w.steps.iter().map(|s| s.id.as_str()).collect();
    for st in &w.steps {
        match (&st.role, &st.user) {
            (Some(r), None) => check_role_ref(ctx, names, file, r),
            (None, Some(_)) => {}
            (Some(_), Some(u)) => {
                ctx.error(file, u.pos, "a step has either `role` or `user`, not both");
            }
            (None, None) => {
                ctx.error(
                    file,
                    st.id.pos,
                    format!("step `{}` has no `role` or `user`", st.id.value),
                );
            }
        }
        for d in st.depends_on.iter().flatten() {
            if d.as_str() == st.id.as_str() {
                ctx.error(
                    file,
                    d.pos,
                    format!("step `{}` depends on itself", st.id.value),
                );
            } else if !step_ids.contains(d.as_str()) {
                let help = suggest(d.as_str(), step_ids.iter().copied());
                let diag = ctx.error(file, d.pos, format!("unknown step `{}`", d.value));
                set_help(diag, help);
            }
        }
        if let Some(due) = &st.due {
            check_due(ctx, names, file, due);
        }
        if let Some(g) = &st.guard {
            check_rule(ctx, file, g, RuleKind::Guard);
        }
        check_actions(ctx, names, file, &st.on_complete);
    }
    // Dependencies must not form a cycle (a step without `depends_on` follows the previous one).
    let deps: BTreeMap<&str, Vec<&str>> = w
        .steps
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let d = match &st.depends_on {
                Some(list) => list.iter().map(|d| d.as_str()).collect(),
                None if i > 0 => vec![w.steps[i - 1].id.as_str()],
                None => Vec::new(),
            };
            (st.id.as_str(), d)
        })
        .collect();
    if let Some(step) = find_cycle(&deps)
        && let Some(st) = w.steps.iter().find(|s| s.id.as_str() == step)
    {
        ctx.error(
            file,
            st.id.pos,
            format!("step `{step}` is part of a dependency cycle"),
        );
    }
    check_actions(ctx, names, file, &w.on_complete);
}

fn find_cycle<'a>(deps: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<&'a str> {
    // Kahn's algorithm: whatever cannot be ordered sits on (or behind) a cycle.
    let mut indegree: BTreeMap<&str, usize> = deps.keys().map(|k| (*k, 0)).collect();
    for list in deps.values() {
        for d in list {
            if let Some(n) = indegree.get_mut(d) {
                *n += 1;
            }
        }
    }
    let mut queue: VecDeque<&str> = indegree
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut done = 0;
    while let Some(k) = queue.pop_front() {
        done += 1;
        for d in deps.get(k).into_iter().flatten() {
            if let Some(n) = indegree.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    queue.push_back(d);
                }
            }
        }
    }
    (done < indegree.len())
        .then(|| indegree.iter().find(|(_, n)| **n > 0).map(|(k, _)| *k))
        .flatten()
}

fn check_reminder(ctx: &mut Ctx<'_>, names: &Names, file: &str, r: &ReminderDef) {
    match &r.trigger {
        Trigger::StageEntered(sr) => {
            check_pipeline_ref(ctx, names, file, &sr.pipeline);
            if let Some(stages) = names.pipelines.get(sr.pipeline.as_str()) {
                check_stage_in(ctx, stages, file, &sr.stage, sr.pipeline.as_str());
            }
        }
        Trigger::FieldSet(f) => {
            check_field_ref(ctx, names, file, f);
        }
        Trigger::ActivityOutcome { activity, outcome } => {
            if check_activity_ref(ctx, names, file, activity) {
                let outcomes = &names.activities[activity.as_str()];
                if !outcomes.contains(outcome.as_str()) {
                    let help = suggest(outcome.as_str(), outcomes.iter().map(String::as_str));
                    let d = ctx.error(
                        file,
                        outcome.pos,
                        format!(
                            "unknown outcome `{}` of activity `{}`",
                            outcome.value, activity.value
                        ),
                    );
                    set_help(d, help);
                }
            }
        }
        Trigger::NoContact {
            for_,
            pipeline,
            stage,
        } => {
            if let Err(e) = due::parse_duration(&for_.value) {
                let col = ctx.content_col(file, for_.pos) + e.offset as u32;
                ctx.error(
                    file,
                    Pos::new(for_.pos.line, col),
                    format!("bad duration `{}`: {}", for_.value, e.message),
                );
            }
            match (pipeline, stage) {
                (Some(p), Some(st)) => {
                    check_pipeline_ref(ctx, names, file, p);
                    if let Some(stages) = names.pipelines.get(p.as_str()) {
                        check_stage_in(ctx, stages, file, st, p.as_str());
                    }
                }
                (Some(p), None) => check_pipeline_ref(ctx, names, file, p),
                (None, Some(st)) => {
                    ctx.error(file, st.pos, "`stage` needs `pipeline` next to it");
                }
                (None, None) => {}
            }
        }
    }
    check_due(ctx, names, file, &r.due);
    check_recipients(ctx, names, file, &r.assignee);
    if let Some(t) = &r.message {
        check_template(ctx, file, t);
    }
}

fn check_due(ctx: &mut Ctx<'_>, names: &Names, file: &str, due: &At<Due>) {
    let col = ctx.content_col(file, due.pos);
    match &due.parsed {
        Err(e) => {
            ctx.error(
                file,
                Pos::new(due.pos.line, col + e.offset as u32),
                format!("bad due-time expression `{}`: {}", due.text, e.message),
            )
            .help = Some("examples: `+2d`, `+2d at 10:00`, `appointment_at - 1d at 10:00`, `next business day 09:30` (see workflows/README.md)".into());
        }
        Ok(expr) => {
            if let DueBase::Field(f) = &expr.base {
                match names.fields.get(f.as_str()) {
                    Some(FieldType::Date | FieldType::Datetime) => {}
                    Some(other) => {
                        ctx.error(file, Pos::new(due.pos.line, col), format!("field `{f}` is a {other:?} field; a due time needs a date or datetime field"));
                    }
                    None => {
                        let help = suggest(f, names.fields.keys().map(String::as_str)).or_else(|| {
                            Some("a due time starts from `now`, a date/datetime field, or `next business day`".into())
                        });
                        let d = ctx.error(
                            file,
                            Pos::new(due.pos.line, col),
                            format!("unknown field `{f}` in due-time expression"),
                        );
                        set_help(d, help);
                    }
                }
            }
        }
    }
}

fn check_recipients(ctx: &mut Ctx<'_>, names: &Names, file: &str, to: &[Recipient]) {
    for r in to {
        if let Recipient::Role(role) = r {
            check_role_ref(ctx, names, file, role);
        }
    }
}

fn check_template(ctx: &mut Ctx<'_>, file: &str, name: &At<TemplateName>) {
    let missing: Vec<String> = ["tr", "en"]
        .iter()
        .map(|lang| format!("messages/{}.{lang}.txt", name.value))
        .filter(|path| {
            !ctx.broken_templates.contains(path) && ctx.templates.get_template(path).is_err()
        })
        .map(|path| format!("templates/{path}"))
        .collect();
    if missing.is_empty() {
        return;
    }
    let help = suggest(name.as_str(), ctx.message_names.iter().map(String::as_str))
        .unwrap_or_else(|| format!("create {}", missing.join(" and ")));
    ctx.error(
        file,
        name.pos,
        format!(
            "missing template for message `{}`: {}",
            name.value,
            missing.join(", ")
        ),
    )
    .help = Some(help);
}

fn check_rule(ctx: &mut Ctx<'_>, file: &str, r: &At<String>, kind: RuleKind) {
    let col = ctx.content_col(file, r.pos);
    let pos = Pos::new(r.pos.line, col);
    let rule = match RuleRef::parse(&r.value) {
        Ok(rule) => rule,
        Err(e) => {
            ctx.error(file, pos, e);
            return;
        }
    };
    ctx.used_rules.insert(rule.file.clone());
    if ctx.broken_rules.contains(&rule.file) {
        return;
    }
    let Some(script) = ctx.rules.script(&rule.file) else {
        let files: Vec<String> = ctx.rules.scripts().map(|s| s.name.clone()).collect();
        let help = suggest(&rule.file, files.iter().map(String::as_str))
            .unwrap_or_else(|| format!("create rules/{}", rule.file));
        ctx.error(
            file,
            pos,
            format!("{} rule file `rules/{}` not found", kind.name(), rule.file),
        )
        .help = Some(help);
        return;
    };
    let functions = script.functions();
    match functions.iter().find(|(n, _)| *n == rule.function) {
        Some((_, 1)) => {}
        Some((_, n)) => {
            ctx.error(
                file,
                pos,
                format!(
                    "rule `{}` takes {n} parameters; a {} rule takes exactly one, `ctx`",
                    rule,
                    kind.name()
                ),
            );
        }
        None => {
            let help = suggest(&rule.function, functions.iter().map(|(n, _)| n.as_str()));
            let d = ctx.error(
                file,
                pos,
                format!(
                    "function `{}` not found in rules/{}",
                    rule.function, rule.file
                ),
            );
            set_help(d, help);
        }
    }
}

fn check_actions(ctx: &mut Ctx<'_>, names: &Names, file: &str, actions: &[Action]) {
    for a in actions {
        match a {
            Action::Notify(n) => {
                if n.to.is_empty() {
                    ctx.error(
                        file,
                        n.message.pos,
                        "`notify` needs at least one recipient in `to`",
                    );
                }
                check_recipients(ctx, names, file, &n.to);
                check_template(ctx, file, &n.message);
            }
            Action::FollowUp(f) => {
                check_due(ctx, names, file, &f.due);
                check_recipients(ctx, names, file, &f.assignee);
            }
            Action::WhatsappTemplate(w) => check_whatsapp(ctx, names, file, w),
            Action::ConversionEvent(c) => {
                if let Some(f) = &c.value_field
                    && let Some(t) = check_field_ref(ctx, names, file, f)
                    && !matches!(t, FieldType::Number | FieldType::Money)
                {
                    ctx.error(
                        file,
                        f.pos,
                        format!(
                            "`value_field` `{}` must be a number or money field",
                            f.value
                        ),
                    );
                }
                if let Some(cur) = &c.currency
                    && (cur.len() != 3 || !cur.chars().all(|c| c.is_ascii_uppercase()))
                {
                    ctx.error(
                        file,
                        cur.pos,
                        format!("`{}` is not an ISO 4217 currency code", cur.value),
                    )
                    .help = Some("e.g. `TRY`, `EUR`, `USD`".into());
                }
            }
            Action::Webhook(w) => {
                let ok = (w.url.starts_with("https://") || w.url.starts_with("http://"))
                    && w.url.len() > 10
                    && !w.url.chars().any(char::is_whitespace);
                if !ok {
                    ctx.error(
                        file,
                        w.url.pos,
                        format!("`{}` is not an http(s) URL", w.url.value),
                    );
                } else if w.url.starts_with("http://") {
                    ctx.warning(
                        file,
                        w.url.pos,
                        "webhook URL is not HTTPS; the payload carries personal data",
                    );
                }
                if let Some(env) = &w.secret_env {
                    let ok = env.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                        && env
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                    if !ok {
                        ctx.error(file, env.pos, format!("`{}` is not an environment variable name", env.value))
                            .help = Some("name the variable holding the secret (e.g. `AKIS_WEBHOOK_SECRET`), never the secret itself".into());
                    }
                }
            }
            Action::CreateWorkOrder(c) => {
                if !names.work_orders.contains(c.definition.as_str()) {
                    let help = suggest(
                        c.definition.as_str(),
                        names.work_orders.iter().map(String::as_str),
                    );
                    let d = ctx.error(
                        file,
                        c.definition.pos,
                        format!("unknown work order `{}`", c.definition.value),
                    );
                    set_help(d, help);
                }
            }
        }
    }
}

fn check_whatsapp(ctx: &mut Ctx<'_>, names: &Names, file: &str, w: &WhatsappAction) {
    let Some(params) = names.whatsapp.get(w.template.as_str()) else {
        let help = suggest(
            w.template.as_str(),
            names.whatsapp.keys().map(String::as_str),
        )
        .or_else(|| Some("declare it under `whatsapp_templates:`".into()));
        let d = ctx.error(
            file,
            w.template.pos,
            format!("unknown WhatsApp template `{}`", w.template.value),
        );
        set_help(d, help);
        return;
    };
    let mut mapped = BTreeSet::new();
    for p in &w.parameters {
        if !params.contains(&p.name.value) {
            let help = suggest(&p.name.value, params.iter().map(String::as_str));
            let d = ctx.error(
                file,
                p.name.pos,
                format!(
                    "template `{}` has no parameter `{}`",
                    w.template.value, p.name.value
                ),
            );
            set_help(d, help);
        } else if !mapped.insert(p.name.value.as_str()) {
            ctx.error(
                file,
                p.name.pos,
                format!("parameter `{}` is mapped twice", p.name.value),
            );
        }
        let env = minijinja::Environment::new();
        if let Err(e) = env.template_from_str(&p.value.value) {
            let col = ctx.content_col(file, p.value.pos);
            ctx.error(
                file,
                Pos::new(p.value.pos.line, col),
                format!(
                    "parameter `{}`: template syntax: {}",
                    p.name.value,
                    e.detail().unwrap_or("error")
                ),
            );
        }
    }
    let missing: Vec<&str> = params
        .iter()
        .map(String::as_str)
        .filter(|p| !mapped.contains(p))
        .collect();
    if !missing.is_empty() {
        ctx.error(
            file,
            w.template.pos,
            format!(
                "WhatsApp template `{}` needs every parameter mapped; missing: {}",
                w.template.value,
                missing.join(", ")
            ),
        )
        .help = Some(format!(
            "add `parameters: [{{name: {}, value: \"{{{{ customer.name }}}}\"}}]`",
            missing[0]
        ));
    }
}

fn check_calendar(ctx: &mut Ctx<'_>, file: &str, cal: &Calendar) {
    if chrono_tz::Tz::from_str(&cal.time_zone.value).is_err() {
        let col = ctx.content_col(file, cal.time_zone.pos);
        ctx.error(
            file,
            Pos::new(cal.time_zone.pos.line, col),
            format!("unknown time zone `{}`", cal.time_zone.value),
        )
        .help = Some("use an IANA name such as `Europe/Istanbul`".into());
    }
    let parse_hm = |t: &str| chrono::NaiveTime::parse_from_str(t, "%H:%M").ok();
    let opens = parse_hm(&cal.business_hours.opens);
    let closes = parse_hm(&cal.business_hours.closes);
    for (t, v) in [
        (&cal.business_hours.opens, opens),
        (&cal.business_hours.closes, closes),
    ] {
        if v.is_none() {
            ctx.error(file, t.pos, format!("`{}` is not a time `HH:MM`", t.value));
        }
    }
    if let (Some(o), Some(c)) = (opens, closes)
        && o >= c
    {
        ctx.error(
            file,
            cal.business_hours.closes.pos,
            "business hours close before they open",
        );
    }
    let mut seen = BTreeSet::new();
    for h in &cal.holidays {
        match chrono::NaiveDate::parse_from_str(&h.date, "%Y-%m-%d") {
            Ok(d) => {
                if !seen.insert(d) {
                    ctx.error(file, h.date.pos, format!("holiday {d} is listed twice"));
                }
            }
            Err(_) => {
                ctx.error(
                    file,
                    h.date.pos,
                    format!("`{}` is not a date `YYYY-MM-DD`", h.date.value),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
intake: {default_pipeline: sales}
pipelines:
  - id: sales
    name: {tr: Satış, en: Sales}
    stages:
      - {id: yeni, name: {tr: Yeni, en: New}, initial: true}
      - {id: kazanildi, name: {tr: Kazanıldı, en: Won}, terminal: true}
    transitions:
      - {from: yeni, to: kazanildi, guard: "g.rhai#ok"}
roles:
  - {id: sales, name: {tr: Satış, en: Sales}, scope: own}
"#;

    /// Loads the base set plus `extra` as a second YAML file; returns the diagnostics.
    fn diags_with(extra: &str) -> Vec<String> {
        let mut set = SourceSet::new();
        set.insert("workflows/base.yaml", BASE);
        set.insert("workflows/extra.yaml", extra);
        set.insert(
            "rules/g.rhai",
            "fn ok(ctx) { allow() }\nfn two(a, b) { allow() }\n",
        );
        set.insert("templates/messages/m.tr.txt", "x");
        set.insert("templates/messages/m.en.txt", "x");
        load(set)
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn assert_one(extra: &str, expected: &str) {
        let d = diags_with(extra);
        assert!(
            d.iter().any(|x| x.contains(expected)),
            "expected a diagnostic containing {expected:?}, got {d:#?}"
        );
    }

    #[test]
    fn the_base_set_is_clean() {
        assert_eq!(diags_with(""), Vec::<String>::new());
    }

    #[test]
    fn work_order_dependency_cycles_and_unknown_steps_are_errors() {
        let wo = |deps: &str| {
            format!(
                "work_orders:\n  - id: w\n    name: {{tr: a, en: b}}\n    steps:\n      - {{id: a, name: {{tr: a, en: a}}, role: sales, depends_on: [b]}}\n      - {{id: b, name: {{tr: b, en: b}}, role: sales, depends_on: [{deps}]}}\n"
            )
        };
        assert_one(
            &wo("a"),
            "extra.yaml:5:14: error: step `a` is part of a dependency cycle",
        );
        assert_one(&wo("c"), "error: unknown step `c`");
        assert_one(&wo("b"), "error: step `b` depends on itself");
        assert_one(
            "work_orders:\n  - id: w\n    name: {tr: a, en: b}\n    steps:\n      - {id: a, name: {tr: a, en: a}}\n",
            "error: step `a` has no `role` or `user`",
        );
        assert_one(
            "work_orders:\n  - id: w\n    name: {tr: a, en: b}\n    steps: []\n",
            "error: work order `w` has no steps",
        );
    }

    #[test]
    fn intake_and_calendar_are_declared_once() {
        assert_one(
            "intake: {default_pipeline: sales}\n",
            "extra.yaml:1:9: error: `intake` is declared more than once",
        );
        assert_one(
            "intake: {default_pipeline: slaes}\n",
            "help: first declared at workflows/base.yaml",
        );
        let mut set = SourceSet::new();
        set.insert(
            "workflows/a.yaml",
            BASE.replace("intake: {default_pipeline: sales}", ""),
        );
        set.insert("rules/g.rhai", "fn ok(ctx) { allow() }");
        let d: Vec<String> = load(set)
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(d.iter().any(|x| x.contains("no `intake` section")), "{d:?}");
    }

    #[test]
    fn calendar_values_are_checked() {
        let cal = |tz: &str, opens: &str, date: &str| {
            format!(
                "calendar:\n  time_zone: {tz}\n  business_hours: {{days: [mon], opens: \"{opens}\", closes: \"18:00\"}}\n  holidays:\n    - {{date: \"{date}\", name: {{tr: a, en: b}}}}\n"
            )
        };
        assert_eq!(
            diags_with(&cal("Europe/Istanbul", "09:00", "2026-10-29")),
            Vec::<String>::new()
        );
        assert_one(
            &cal("Europe/Istanbull", "09:00", "2026-10-29"),
            "extra.yaml:2:14: error: unknown time zone",
        );
        assert_one(
            &cal("UTC", "19:00", "2026-10-29"),
            "business hours close before they open",
        );
        assert_one(&cal("UTC", "9", "2026-10-29"), "is not a time `HH:MM`");
        assert_one(
            &cal("UTC", "09:00", "2026-13-01"),
            "is not a date `YYYY-MM-DD`",
        );
    }

    #[test]
    fn actions_are_checked_against_their_job_kinds() {
        let with_action = |action: &str| {
            format!(
                "card_fields:\n  - {{id: amount, type: money, label: {{tr: a, en: b}}}}\n  - {{id: note, type: text, label: {{tr: a, en: b}}}}\nactivity_kinds:\n  - id: k\n    name: {{tr: a, en: b}}\n    outcomes:\n      - id: o\n        name: {{tr: a, en: b}}\n        actions:\n          - {action}\n"
            )
        };
        assert_eq!(
            diags_with(&with_action(
                "conversion_event: {event: Purchase, value_field: amount, currency: TRY}"
            )),
            Vec::<String>::new()
        );
        assert_one(
            &with_action("conversion_event: {event: Purchase, value_field: note}"),
            "must be a number or money field",
        );
        assert_one(
            &with_action("conversion_event: {event: Purchase, currency: tl}"),
            "not an ISO 4217 currency code",
        );
        assert_one(
            &with_action("conversion_event: {event: Buy}"),
            "unknown variant `Buy`",
        );
        assert_one(
            &with_action("webhook: {url: \"ftp://x.example.com\"}"),
            "is not an http(s) URL",
        );
        assert_one(
            &with_action("webhook: {url: \"http://x.example.com/h\"}"),
            "warning: webhook URL is not HTTPS",
        );
        assert_one(
            &with_action("webhook: {url: \"https://x.example.com/h\", secret_env: \"s3cr3t!\"}"),
            "is not an environment variable name",
        );
        assert_one(
            &with_action("create_work_order: {definition: nope}"),
            "unknown work order `nope`",
        );
        assert_one(
            &with_action("notify: {to: [], message: m}"),
            "needs at least one recipient",
        );
        assert_one(
            &with_action("notify: {to: [{role: boss}], message: m}"),
            "unknown role `boss`",
        );
        assert_one(
            &with_action("follow_up: {title: {tr: a, en: b}, due: \"note + 1d\"}"),
            "a due time needs a date or datetime field",
        );
        assert_one(
            &with_action("whatsapp_template: {template: nope}"),
            "unknown WhatsApp template `nope`",
        );
    }

    #[test]
    fn fields_rules_and_return_policies_are_checked() {
        assert_one(
            "card_fields:\n  - {id: c, type: choice, label: {tr: a, en: b}}\n",
            "choice field `c` has no `options`",
        );
        assert_one(
            "card_fields:\n  - {id: c, type: text, label: {tr: a, en: b}, options: [{id: x, label: {tr: a, en: b}}]}\n",
            "has `options` but is not `type: choice`",
        );
        assert_one(
            "customer_fields:\n  - {id: phone, type: text, label: {tr: a, en: b}}\n",
            "field id `phone` is a built-in field",
        );
        assert_one(
            "card_fields:\n  - {id: c, type: text, label: {tr: a, en: b}, required_on_entry: [kazanld]}\n",
            "did you mean `kazanildi`?",
        );
        let pipeline = |extra: &str| {
            format!(
                "pipelines:\n  - id: p2\n    name: {{tr: a, en: b}}\n    stages:\n      - {{id: a, name: {{tr: a, en: a}}, initial: true}}\n      - {{id: z, name: {{tr: z, en: z}}, terminal: true, color: \"red\"}}\n    transitions:\n      - {{from: a, to: z}}\n{extra}"
            )
        };
        assert_one(&pipeline(""), "`red` is not a colour");
        assert_one(
            &pipeline("    on_return: {reopen: {stage: z, activity: k}}\n"),
            "cannot be reopened into terminal stage `z`",
        );
        assert_one(
            &pipeline("    on_return: {record_only: {activity: k}}\n"),
            "unknown activity kind `k`",
        );
        assert_one(
            &pipeline("    on_new_lead: {scoring: \"g.rhai#two\"}\n"),
            "takes 2 parameters; a scoring rule takes exactly one",
        );
        assert_one(
            &pipeline("    on_new_lead: {assignment: \"h.rhai#x\"}\n"),
            "assignment rule file `rules/h.rhai` not found",
        );
        assert_one(
            &pipeline("    card: {badges: [\"g.rhai\"]}\n"),
            "must be `file.rhai#function`",
        );
        assert_one(
            &pipeline("    card: {fields: [nmae]}\n"),
            "unknown field `nmae`",
        );
    }

    #[test]
    fn reminder_triggers_resolve_their_references() {
        let rem = |trigger: &str| {
            format!(
                "reminder_sets:\n  - id: s\n    name: {{tr: a, en: b}}\n    reminders:\n      - id: r\n        title: {{tr: a, en: b}}\n        trigger: {trigger}\n        due: \"+1d\"\n"
            )
        };
        assert_eq!(
            diags_with(&rem("{stage_entered: {pipeline: sales, stage: yeni}}")),
            Vec::<String>::new()
        );
        assert_one(
            &rem("{stage_entered: {pipeline: sales, stage: eski}}"),
            "unknown stage `eski` in pipeline `sales`",
        );
        assert_one(
            &rem("{no_contact: {for: 3x}}"),
            "extra.yaml:7:38: error: bad duration `3x`: unknown unit `x`",
        );
        assert_one(
            &rem("{no_contact: {for: 3d, stage: yeni}}"),
            "`stage` needs `pipeline`",
        );
        assert_one(
            &rem("{activity_outcome: {activity: k, outcome: o}}"),
            "unknown activity kind `k`",
        );
        assert_one(&rem("{field_set: nope}"), "unknown field `nope`");
    }

    #[test]
    fn a_file_that_is_not_utf8_or_too_large_is_reported() {
        let mut set = SourceSet::new();
        set.insert("workflows/a.yaml", vec![0xff, 0xfe, b'x']);
        set.insert("workflows/b.yaml", vec![b'#'; MAX_FILE_BYTES + 1]);
        let d: Vec<String> = load(set)
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            d.iter()
                .any(|x| x.starts_with("workflows/a.yaml:1:1: error: file is not valid UTF-8")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|x| x.starts_with("workflows/b.yaml:1:1: error: file is larger")),
            "{d:?}"
        );
    }
}
