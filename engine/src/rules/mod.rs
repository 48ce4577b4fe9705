//! The Rhai sandbox: one engine configuration, scripts compiled once, bounded evaluation.
//!
//! Every rule is a Rhai function `fn name(ctx)` in a file under `rules/`, referenced from
//! YAML as `file.rhai#name`. `ctx` is a map (`ctx.card`, `ctx.customer`, `ctx.transition`,
//! `ctx.user`, plus kind-specific keys); it is passed by value, so a rule can never change
//! the caller's data. Results are converted into typed values ([`GuardDecision`],
//! [`Scores`], an assignee user id, [`Badge`], [`OutcomeDecision`]); anything else is a
//! [`RuleError::BadResult`].
//!
//! This module must never let a script touch files, the network or the host: the module
//! resolver is a dummy, `eval` is disabled, print/debug go to tracing, every size and
//! depth is bounded, and each call has a wall-clock deadline (~50 ms) enforced from
//! `on_progress`. Evaluation is CPU work: async callers use the `*_async` methods, which
//! run it on tokio's blocking pool so the async worker threads keep serving requests.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{AST, CallFnOptions, Dynamic, Engine, EvalAltResult, Map, Position, Scope};

/// Wall-clock bound of one rule call.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(50);
/// Operation bound of one rule call (a second line of defence behind the deadline).
pub const MAX_OPERATIONS: u64 = 5_000_000;

thread_local! {
    /// Deadline of the rule call running on this thread; read from `on_progress`.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Operation count at which the last call on this thread was stopped.
    static STOPPED_AT_OPS: Cell<u64> = const { Cell::new(0) };
    /// Last statement position seen by the locating debugger on this thread.
    static LAST_POS: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
}

/// Builds the one sandboxed engine configuration used for every rule.
pub fn sandboxed_engine() -> Engine {
    let mut engine = Engine::new();
    engine.set_module_resolver(DummyModuleResolver::new());
    engine.disable_symbol("eval");
    engine.set_max_operations(MAX_OPERATIONS);
    engine.set_max_call_levels(32);
    engine.set_max_expr_depths(64, 32);
    engine.set_max_string_size(64 * 1024);
    engine.set_max_array_size(10_000);
    engine.set_max_map_size(10_000);
    engine.set_max_variables(256);
    engine.set_max_functions(256);
    engine.set_max_modules(0);
    engine.set_strict_variables(true);
    engine.on_print(|text| tracing::info!(target: "akis::rules", "{text}"));
    engine.on_debug(|text, source, pos| {
        tracing::debug!(target: "akis::rules", source = source.unwrap_or(""), line = pos.line().unwrap_or(0), "{text}");
    });
    engine.on_progress(|ops| {
        // Reading the clock on every operation would dominate small rules.
        if ops % 512 == 0 {
            let expired = DEADLINE.with(|d| d.get().is_some_and(|t| Instant::now() >= t));
            if expired {
                STOPPED_AT_OPS.with(|c| c.set(ops));
                return Some(Dynamic::from("deadline exceeded"));
            }
        }
        None
    });
    engine.register_fn("allow", || -> Map {
        let mut m = Map::new();
        m.insert("allow".into(), Dynamic::TRUE);
        m
    });
    engine.register_fn("deny", |tr: &str, en: &str| -> Map {
        let mut m = Map::new();
        m.insert("allow".into(), Dynamic::FALSE);
        m.insert("tr".into(), tr.into());
        m.insert("en".into(), en.into());
        m
    });
    engine.register_fn("deny_key", |key: &str| -> Map {
        let mut m = Map::new();
        m.insert("allow".into(), Dynamic::FALSE);
        m.insert("key".into(), key.into());
        m
    });
    engine
}

/// A compile error in a rule file, with its position in that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

/// A reference to a rule: `file.rhai#function`, the file relative to `rules/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleRef {
    pub file: String,
    pub function: String,
}

impl RuleRef {
    /// Parses `file.rhai#function`.
    pub fn parse(s: &str) -> Result<RuleRef, String> {
        let Some((file, function)) = s.split_once('#') else {
            return Err(format!("rule reference `{s}` must be `file.rhai#function`"));
        };
        if !file.ends_with(".rhai")
            || file.len() <= 5
            || file.contains("..")
            || file.starts_with('/')
        {
            return Err(format!(
                "rule reference `{s}`: `{file}` must be a `.rhai` file under rules/"
            ));
        }
        let ident = function
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && function
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            return Err(format!(
                "rule reference `{s}`: `{function}` is not a function name"
            ));
        }
        Ok(RuleRef {
            file: file.to_owned(),
            function: function.to_owned(),
        })
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.file, self.function)
    }
}

/// A failed rule call. Every variant names the script (`rules/<file>`) and function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("rule `{rule}` not found")]
    NotFound { rule: String },
    #[error("rules/{script}:{line}: `{function}` stopped: ran longer than {limit_ms} ms")]
    Timeout {
        script: String,
        function: String,
        line: u32,
        limit_ms: u64,
    },
    #[error("rules/{script}:{line}: `{function}` stopped: {message}")]
    Limit {
        script: String,
        function: String,
        line: u32,
        message: String,
    },
    #[error("rules/{script}:{line}:{col}: `{function}` failed: {message}")]
    Runtime {
        script: String,
        function: String,
        line: u32,
        col: u32,
        message: String,
    },
    #[error("rules/{script}: `{function}` returned {message}")]
    BadResult {
        script: String,
        function: String,
        message: String,
    },
    #[error("rule evaluation was cancelled: {0}")]
    Cancelled(String),
}

/// A guard's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardDecision {
    Allow,
    Deny(DenyReason),
}

/// Why a guard refused: a text in both languages, or a message key for the UI catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    Text { tr: String, en: String },
    Key(String),
}

/// Lead quality scores, each 0..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scores {
    /// Intent / interest.
    pub emotional: u8,
    /// Fit / budget / feasibility.
    pub logical: u8,
}

/// A computed card badge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    pub tr: String,
    pub en: String,
    pub color: Option<String>,
}

/// What an outcome rule decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutcomeDecision {
    /// Stage id the card moves to, if any.
    pub move_to: Option<String>,
}

/// The read-only input of a rule: a map passed as the single argument `ctx`.
#[derive(Debug, Clone, Default)]
pub struct RuleContext {
    map: Map,
}

impl RuleContext {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `ctx.<key>` from any serializable value (`card`, `customer`, `transition`,
    /// `user`, `candidates`, `counter`, `activity`...).
    pub fn with(mut self, key: &str, value: &impl serde::Serialize) -> Result<Self, String> {
        let dynamic = rhai::serde::to_dynamic(value).map_err(|e| e.to_string())?;
        self.map.insert(key.into(), dynamic);
        Ok(self)
    }

    /// Sets `ctx.<key>` from a JSON value (never fails).
    pub fn with_json(mut self, key: &str, value: &serde_json::Value) -> Self {
        let dynamic = rhai::serde::to_dynamic(value).unwrap_or(Dynamic::UNIT);
        self.map.insert(key.into(), dynamic);
        self
    }
}

/// One compiled rule file.
#[derive(Debug, Clone)]
pub struct Script {
    /// Path relative to `rules/` (`guards.rhai`).
    pub name: String,
    ast: Arc<AST>,
}

impl Script {
    /// Names and arities of the functions the script defines.
    pub fn functions(&self) -> Vec<(String, usize)> {
        self.ast
            .iter_functions()
            .map(|f| (f.name.to_owned(), f.params.len()))
            .collect()
    }
}

/// The compiled rule files of a definition set and the engine that runs them.
pub struct Rules {
    engine: Engine,
    scripts: BTreeMap<String, Script>,
    deadline: Duration,
    max_operations: u64,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("scripts", &self.scripts.keys().collect::<Vec<_>>())
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self::new()
    }
}

impl Rules {
    pub fn new() -> Self {
        Rules {
            engine: sandboxed_engine(),
            scripts: BTreeMap::new(),
            deadline: DEFAULT_DEADLINE,
            max_operations: MAX_OPERATIONS,
        }
    }

    /// Changes the wall-clock bound of each call (tests use a shorter one).
    pub fn set_deadline(&mut self, deadline: Duration) {
        self.deadline = deadline;
    }

    /// Changes the operation bound of each call (0 = only the deadline applies).
    pub fn set_max_operations(&mut self, max: u64) {
        self.max_operations = max;
        self.engine.set_max_operations(max);
    }

    /// Compiles `source` as `rules/<name>` and keeps it.
    pub fn compile(&mut self, name: &str, source: &str) -> Result<&Script, CompileError> {
        let mut ast = self.engine.compile(source).map_err(|e| {
            let pos = e.position();
            CompileError {
                line: pos.line().unwrap_or(0) as u32,
                col: pos.position().unwrap_or(0) as u32,
                message: e.err_type().to_string(),
            }
        })?;
        ast.set_source(name);
        let script = Script {
            name: name.to_owned(),
            ast: Arc::new(ast),
        };
        self.scripts.insert(name.to_owned(), script);
        Ok(&self.scripts[name])
    }

    pub fn script(&self, name: &str) -> Option<&Script> {
        self.scripts.get(name)
    }

    pub fn scripts(&self) -> impl Iterator<Item = &Script> {
        self.scripts.values()
    }

    /// Calls `rule` with `ctx` and returns the raw result (bounded, sandboxed).
    pub fn call(&self, rule: &RuleRef, ctx: &RuleContext) -> Result<Dynamic, RuleError> {
        let script = self
            .scripts
            .get(&rule.file)
            .ok_or_else(|| RuleError::NotFound {
                rule: rule.to_string(),
            })?;
        let mut scope = Scope::new();
        let previous = DEADLINE.with(|d| d.replace(Some(Instant::now() + self.deadline)));
        let result = self.engine.call_fn_with_options::<Dynamic>(
            CallFnOptions::new().eval_ast(false).rewind_scope(true),
            &mut scope,
            &script.ast,
            &rule.function,
            (Dynamic::from_map(ctx.map.clone()),),
        );
        DEADLINE.with(|d| d.set(previous));
        result.map_err(|e| self.map_error(rule, ctx, *e))
    }

    /// Rhai replaces the position of a stopped script with the call site, so the line where
    /// a script was stopped is found by replaying the call (rules are deterministic) up to
    /// the same operation count with a debugger recording each statement's position.
    /// This only runs after a script was stopped, never on the normal path.
    fn locate_stop(&self, rule: &RuleRef, ctx: &RuleContext, stop_ops: u64) -> (u32, u32) {
        let Some(script) = self.scripts.get(&rule.file) else {
            return (0, 0);
        };
        let mut engine = sandboxed_engine();
        engine.set_max_operations(0);
        engine.on_progress(move |ops| (ops >= stop_ops).then_some(Dynamic::UNIT));
        #[allow(deprecated)] // "volatile", not deprecated: see the rhai docs
        engine.register_debugger(
            |_, debugger| debugger,
            |_, event, _, _, pos| {
                if !matches!(event, rhai::debugger::DebuggerEvent::Step) {
                    return Ok(rhai::debugger::DebuggerCommand::StepInto);
                }
                if let (Some(line), Some(col)) = (pos.line(), pos.position()) {
                    LAST_POS.with(|p| p.set((line as u32, col as u32)));
                }
                Ok(rhai::debugger::DebuggerCommand::StepInto)
            },
        );
        LAST_POS.with(|p| p.set((0, 0)));
        let _ = engine.call_fn_with_options::<Dynamic>(
            CallFnOptions::new().eval_ast(false).rewind_scope(true),
            &mut Scope::new(),
            &script.ast,
            &rule.function,
            (Dynamic::from_map(ctx.map.clone()),),
        );
        LAST_POS.with(Cell::get)
    }

    fn map_error(&self, rule: &RuleRef, ctx: &RuleContext, err: EvalAltResult) -> RuleError {
        let mut err = &err;
        // Errors raised inside the rule function come wrapped in "error in function call".
        while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = err {
            err = inner;
        }
        let pos: Position = err.position();
        let line = pos.line().unwrap_or(0) as u32;
        let col = pos.position().unwrap_or(0) as u32;
        let script = rule.file.clone();
        let function = rule.function.clone();
        match err {
            EvalAltResult::ErrorFunctionNotFound(name, _)
                if name.starts_with(&rule.function) && line == 0 =>
            {
                RuleError::NotFound {
                    rule: rule.to_string(),
                }
            }
            EvalAltResult::ErrorTerminated(..) => RuleError::Timeout {
                script,
                function,
                line: if line > 0 {
                    line
                } else {
                    self.locate_stop(rule, ctx, STOPPED_AT_OPS.with(Cell::get))
                        .0
                },
                limit_ms: self.deadline.as_millis() as u64,
            },
            EvalAltResult::ErrorTooManyOperations(_) => RuleError::Limit {
                script,
                function,
                line: if line > 0 {
                    line
                } else {
                    self.locate_stop(rule, ctx, self.max_operations.saturating_add(1))
                        .0
                },
                message: err.to_string(),
            },
            EvalAltResult::ErrorStackOverflow(_) | EvalAltResult::ErrorDataTooLarge(..) => {
                RuleError::Limit {
                    script,
                    function,
                    line,
                    message: err.to_string(),
                }
            }
            _ => RuleError::Runtime {
                script,
                function,
                line,
                col,
                message: err.to_string(),
            },
        }
    }

    fn bad(&self, rule: &RuleRef, message: impl Into<String>) -> RuleError {
        RuleError::BadResult {
            script: rule.file.clone(),
            function: rule.function.clone(),
            message: message.into(),
        }
    }

    /// Runs a guard: `true`/`allow()` allows; `deny(tr, en)` / `deny_key(key)` refuses.
    pub fn guard(&self, rule: &RuleRef, ctx: &RuleContext) -> Result<GuardDecision, RuleError> {
        let out = self.call(rule, ctx)?;
        if let Some(b) = out.clone().try_cast::<bool>() {
            return if b {
                Ok(GuardDecision::Allow)
            } else {
                Err(self.bad(
                    rule,
                    "`false`; refuse with `deny(\"…\", \"…\")` so the user sees why",
                ))
            };
        }
        let Some(map) = out.try_cast::<Map>() else {
            return Err(self.bad(rule, "a value that is not a guard decision; return `allow()`, `deny(tr, en)` or `deny_key(key)`"));
        };
        match map.get("allow").and_then(|v| v.as_bool().ok()) {
            Some(true) => Ok(GuardDecision::Allow),
            Some(false) => {
                let text = |k: &str| map.get(k).and_then(|v| v.clone().into_string().ok());
                if let Some(key) = text("key") {
                    Ok(GuardDecision::Deny(DenyReason::Key(key)))
                } else if let (Some(tr), Some(en)) = (text("tr"), text("en")) {
                    Ok(GuardDecision::Deny(DenyReason::Text { tr, en }))
                } else {
                    Err(self.bad(rule, "a denial without a reason in both languages"))
                }
            }
            None => Err(self.bad(
                rule,
                "a map without `allow`; use `allow()` or `deny(tr, en)`",
            )),
        }
    }

    /// Runs a scoring rule: must return `#{emotional: 0..=100, logical: 0..=100}`.
    pub fn score(&self, rule: &RuleRef, ctx: &RuleContext) -> Result<Scores, RuleError> {
        let out = self.call(rule, ctx)?;
        let Some(map) = out.try_cast::<Map>() else {
            return Err(self.bad(rule, "no map; return `#{emotional: .., logical: ..}`"));
        };
        let get = |k: &str| -> Result<u8, RuleError> {
            let v = map
                .get(k)
                .and_then(|v| v.as_int().ok())
                .ok_or_else(|| self.bad(rule, format!("a map without an integer `{k}`")))?;
            Ok(v.clamp(0, 100) as u8)
        };
        Ok(Scores {
            emotional: get("emotional")?,
            logical: get("logical")?,
        })
    }

    /// Runs an assignment rule: a user id string, or `()` for "leave unassigned".
    pub fn assign(&self, rule: &RuleRef, ctx: &RuleContext) -> Result<Option<String>, RuleError> {
        let out = self.call(rule, ctx)?;
        if out.is_unit() {
            return Ok(None);
        }
        if let Ok(s) = out.clone().into_string() {
            return Ok((!s.is_empty()).then_some(s));
        }
        if let Ok(i) = out.as_int() {
            return Ok(Some(i.to_string()));
        }
        Err(self.bad(
            rule,
            format!("a {}; return a user id string or ()", out.type_name()),
        ))
    }

    /// Runs a badge rule: `()` for no badge, or `#{tr, en, color}`.
    pub fn badge(&self, rule: &RuleRef, ctx: &RuleContext) -> Result<Option<Badge>, RuleError> {
        let out = self.call(rule, ctx)?;
        if out.is_unit() {
            return Ok(None);
        }
        let Some(map) = out.try_cast::<Map>() else {
            return Err(self.bad(
                rule,
                "no map; return `()` or `#{tr: .., en: .., color: ..}`",
            ));
        };
        let text = |k: &str| map.get(k).and_then(|v| v.clone().into_string().ok());
        match (text("tr"), text("en")) {
            (Some(tr), Some(en)) => Ok(Some(Badge {
                tr,
                en,
                color: text("color"),
            })),
            _ => Err(self.bad(rule, "a badge without `tr` and `en` labels")),
        }
    }

    /// Runs an outcome rule: `()` to stay, or a stage id string to move the card there.
    pub fn outcome(&self, rule: &RuleRef, ctx: &RuleContext) -> Result<OutcomeDecision, RuleError> {
        let out = self.call(rule, ctx)?;
        if out.is_unit() {
            return Ok(OutcomeDecision::default());
        }
        match out.into_string() {
            Ok(stage) => Ok(OutcomeDecision {
                move_to: Some(stage),
            }),
            Err(t) => Err(self.bad(rule, format!("a {t}; return a stage id or ()"))),
        }
    }
}

/// Async wrappers: evaluation runs on tokio's blocking pool, never on the async workers.
impl Rules {
    async fn off_thread<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Rules) -> Result<T, RuleError> + Send + 'static,
    ) -> Result<T, RuleError> {
        let rules = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&rules))
            .await
            .map_err(|e| RuleError::Cancelled(e.to_string()))?
    }

    pub async fn guard_async(
        self: &Arc<Self>,
        rule: RuleRef,
        ctx: RuleContext,
    ) -> Result<GuardDecision, RuleError> {
        self.off_thread(move |r| r.guard(&rule, &ctx)).await
    }

    pub async fn score_async(
        self: &Arc<Self>,
        rule: RuleRef,
        ctx: RuleContext,
    ) -> Result<Scores, RuleError> {
        self.off_thread(move |r| r.score(&rule, &ctx)).await
    }

    pub async fn assign_async(
        self: &Arc<Self>,
        rule: RuleRef,
        ctx: RuleContext,
    ) -> Result<Option<String>, RuleError> {
        self.off_thread(move |r| r.assign(&rule, &ctx)).await
    }

    pub async fn badge_async(
        self: &Arc<Self>,
        rule: RuleRef,
        ctx: RuleContext,
    ) -> Result<Option<Badge>, RuleError> {
        self.off_thread(move |r| r.badge(&rule, &ctx)).await
    }

    pub async fn outcome_async(
        self: &Arc<Self>,
        rule: RuleRef,
        ctx: RuleContext,
    ) -> Result<OutcomeDecision, RuleError> {
        self.off_thread(move |r| r.outcome(&rule, &ctx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(src: &str) -> Rules {
        let mut r = Rules::new();
        r.compile("t.rhai", src).expect("compiles");
        r
    }

    fn rr(f: &str) -> RuleRef {
        RuleRef::parse(&format!("t.rhai#{f}")).unwrap()
    }

    #[test]
    fn rule_references_parse_and_reject_bad_shapes() {
        assert_eq!(
            RuleRef::parse("sales/guards.rhai#need_date").unwrap(),
            RuleRef {
                file: "sales/guards.rhai".into(),
                function: "need_date".into()
            }
        );
        for bad in [
            "guards.rhai",
            "guards.js#f",
            "guards.rhai#",
            "guards.rhai#1f",
            "../x.rhai#f",
            ".rhai#f",
        ] {
            assert!(RuleRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_guard_allows_or_denies_with_both_languages() {
        let r = rules(
            r#"fn g(ctx) { if ctx.card.amount > 0 { allow() } else { deny("Tutar gerekli", "Amount required") } }
               fn k(ctx) { deny_key("need_amount") }"#,
        );
        let ctx = |a: i64| RuleContext::new().with_json("card", &json!({"amount": a}));
        assert_eq!(r.guard(&rr("g"), &ctx(5)).unwrap(), GuardDecision::Allow);
        assert_eq!(
            r.guard(&rr("g"), &ctx(0)).unwrap(),
            GuardDecision::Deny(DenyReason::Text {
                tr: "Tutar gerekli".into(),
                en: "Amount required".into()
            })
        );
        assert_eq!(
            r.guard(&rr("k"), &ctx(0)).unwrap(),
            GuardDecision::Deny(DenyReason::Key("need_amount".into()))
        );
    }

    #[test]
    fn a_rule_cannot_change_the_callers_context() {
        let r = rules(
            "fn g(ctx) { ctx.card.amount = 99; allow() } fn h(ctx) { if ctx.card.amount == 1 { allow() } else { deny(\"x\", \"x\") } }",
        );
        let ctx = RuleContext::new().with_json("card", &json!({"amount": 1}));
        r.guard(&rr("g"), &ctx).unwrap();
        assert_eq!(r.guard(&rr("h"), &ctx).unwrap(), GuardDecision::Allow);
    }

    #[test]
    fn wrong_results_are_typed_errors_naming_the_script() {
        let r = rules("fn g(ctx) { 42 } fn s(ctx) { #{emotional: 150} } fn f(ctx) { false }");
        let ctx = RuleContext::new();
        let e = r.guard(&rr("g"), &ctx).unwrap_err();
        assert!(matches!(e, RuleError::BadResult { .. }), "{e:?}");
        assert!(e.to_string().starts_with("rules/t.rhai"));
        assert!(matches!(
            r.score(&rr("s"), &ctx),
            Err(RuleError::BadResult { .. })
        ));
        assert!(matches!(
            r.guard(&rr("f"), &ctx),
            Err(RuleError::BadResult { .. })
        ));
        assert!(matches!(
            r.guard(&rr("nope"), &ctx),
            Err(RuleError::NotFound { .. })
        ));
    }

    #[test]
    fn scores_are_clamped_and_assignment_returns_a_user() {
        let r = rules(
            "fn s(ctx) { #{emotional: 150, logical: -3} } fn a(ctx) { ctx.candidates[ctx.counter % ctx.candidates.len()] } fn n(ctx) { () }",
        );
        assert_eq!(
            r.score(&rr("s"), &RuleContext::new()).unwrap(),
            Scores {
                emotional: 100,
                logical: 0
            }
        );
        let ctx = RuleContext::new()
            .with_json("candidates", &json!(["u1", "u2", "u3"]))
            .with_json("counter", &json!(4));
        assert_eq!(r.assign(&rr("a"), &ctx).unwrap(), Some("u2".into()));
        assert_eq!(r.assign(&rr("n"), &ctx).unwrap(), None);
    }

    #[test]
    fn runtime_errors_carry_the_line_in_the_script() {
        let r = rules("fn g(ctx) {\n  let x = 1;\n  x.nope()\n}");
        match r.guard(&rr("g"), &RuleContext::new()) {
            Err(RuleError::Runtime { script, line, .. }) => {
                assert_eq!(script, "t.rhai");
                assert_eq!(line, 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_sandbox_has_no_eval_no_imports_and_bounded_sizes() {
        let mut r = Rules::new();
        assert!(r.compile("e.rhai", "fn g(ctx) { eval(\"1\") }").is_err());
        let undeclared = r
            .compile("u.rhai", "fn g(ctx) {\n  allow_typo\n}")
            .unwrap_err();
        assert_eq!(undeclared.line, 2, "{undeclared:?}");
        let r2 = rules("fn g(ctx) { import \"x\" as y; allow() }");
        assert!(matches!(
            r2.guard(&rr("g"), &RuleContext::new()),
            Err(RuleError::Runtime { .. })
        ));
        let r3 = rules("fn g(ctx) { let s = \"x\"; loop { s += s; } }");
        assert!(matches!(
            r3.guard(&rr("g"), &RuleContext::new()),
            Err(RuleError::Limit { .. })
        ));
        let r4 = rules("fn g(ctx) { g(ctx) }");
        assert!(matches!(
            r4.guard(&rr("g"), &RuleContext::new()),
            Err(RuleError::Limit { .. })
        ));
    }

    #[test]
    fn an_endless_loop_is_stopped_by_the_deadline_naming_script_and_line() {
        let src = "fn g(ctx) {\n  let i = 0;\n  loop {\n    i += 1;\n  }\n}";
        let mut r = rules(src);
        r.set_max_operations(0);
        r.set_deadline(Duration::from_millis(20));
        let started = Instant::now();
        let err = r.guard(&rr("g"), &RuleContext::new()).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        match &err {
            RuleError::Timeout { script, line, .. } => {
                assert_eq!(script, "t.rhai");
                assert_eq!(*line, 4, "{err}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().starts_with("rules/t.rhai:4: `g` stopped"),
            "{err}"
        );
        // The operation bound (whichever of the two stops it first) names the line too.
        let r = rules(src);
        match r.guard(&rr("g"), &RuleContext::new()).unwrap_err() {
            RuleError::Limit { line, .. } | RuleError::Timeout { line, .. } => assert_eq!(line, 4),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_tasks_keep_running_while_a_rule_loops() {
        let mut r = rules("fn g(ctx) { let i = 0; loop { i += 1; } }");
        r.set_max_operations(0);
        r.set_deadline(Duration::from_millis(300));
        let r = Arc::new(r);
        let looping = tokio::spawn({
            let r = Arc::clone(&r);
            async move { r.guard_async(rr("g"), RuleContext::new()).await }
        });
        // While the rule spins, a timer task on the async workers keeps ticking.
        let mut ticks = 0;
        while !looping.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            ticks += 1;
        }
        let err = looping.await.unwrap().unwrap_err();
        assert!(matches!(err, RuleError::Timeout { .. }), "{err:?}");
        assert!(
            ticks >= 10,
            "async workers were blocked: only {ticks} ticks"
        );
    }
}
