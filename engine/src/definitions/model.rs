//! The typed model of one YAML definition file.
//!
//! Every file under `workflows/` has the same top-level shape, [`DefinitionFile`]: a set of
//! optional sections (pipelines, fields, activity kinds, work orders, reminder sets, roles,
//! WhatsApp templates, intake, calendar). The loader merges the sections of all files.
//! All structs use `deny_unknown_fields` and actions/triggers are externally tagged enums
//! (`- notify: {to: owners}`) so serde-saphyr reports a mistake at the offending key.
//! Values that other files refer to, or that later checks may complain about, are wrapped
//! in [`At`] to keep their position.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::diagnostic::Pos;
use super::due::Due;

/// A value with the position where it was written.
#[derive(Debug, Clone)]
pub struct At<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> Deref for At<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for At<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        let loc = spanned.referenced;
        Ok(At {
            value: spanned.value,
            pos: Pos::new(
                u32::try_from(loc.line()).unwrap_or(u32::MAX),
                u32::try_from(loc.column()).unwrap_or(u32::MAX),
            ),
        })
    }
}

/// Serialized as the bare value: positions are not part of what a definition says.
impl<T: Serialize> Serialize for At<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<T: JsonSchema> JsonSchema for At<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// Checks an id: ASCII lower-case letters, digits and `_`, starting with a letter,
/// at most 64 characters.
pub fn check_slug(s: &str) -> Result<(), String> {
    let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let ok_rest = s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok_first && ok_rest && s.len() <= 64 {
        Ok(())
    } else {
        Err(format!(
            "invalid id `{s}`: ids are ASCII slugs (a-z, 0-9, `_`, starting with a letter, at most 64 characters); put Turkish text in `name`"
        ))
    }
}

macro_rules! slug_id {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                check_slug(&s)?;
                Ok(Self(s))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::try_from(s).map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": "^[a-z][a-z0-9_]{0,63}$",
                    "description": "ASCII slug id (a-z, 0-9, _)"
                })
            }
        }
    )*};
}

slug_id!(
    /// Id of a pipeline (`sales`).
    PipelineId,
    /// Id of a stage, unique within its pipeline (`gorusuluyor`).
    StageId,
    /// Id of a custom or built-in field (`appointment_at`).
    FieldId,
    /// Id of a role (`sales`).
    RoleId,
    /// Id of an activity kind (`call`).
    ActivityKindId,
    /// Id of an activity outcome, unique within its kind (`no_answer`).
    OutcomeId,
    /// Id of a work-order definition.
    WorkOrderId,
    /// Id of a work-order step, unique within its work order.
    StepId,
    /// Id of a reminder set or of one reminder in it.
    ReminderId,
    /// Name of a message template under `templates/messages/`.
    TemplateName,
    /// Name of a WhatsApp template in the catalogue.
    WhatsappTemplateName,
    /// A lead source (`meta_lead_ad`, `web_form`, `whatsapp`, `manual`, `import`...).
    SourceId,
    /// Id of a recurring schedule.
    ScheduleId,
);

/// A display text in both languages.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct I18n {
    pub tr: String,
    pub en: String,
}

impl I18n {
    /// The text in `lang` (`en`), Turkish otherwise.
    pub fn get(&self, lang: &str) -> &str {
        if lang == "en" { &self.en } else { &self.tr }
    }
}

/// One YAML file under `workflows/`. Every section is optional; the loader merges them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefinitionFile {
    /// Sales pipelines (kanban boards).
    #[serde(default)]
    pub pipelines: Vec<Pipeline>,
    /// Which pipeline a new lead enters. Declared once in the whole set.
    #[serde(default)]
    pub intake: Option<At<Intake>>,
    /// Custom fields stored on the customer.
    #[serde(default)]
    pub customer_fields: Vec<FieldDef>,
    /// Custom fields stored on a card (per pipeline position).
    #[serde(default)]
    pub card_fields: Vec<FieldDef>,
    /// Activity kinds (call, appointment, deposit...) and their outcomes.
    #[serde(default)]
    pub activity_kinds: Vec<ActivityKind>,
    /// Work-order definitions.
    #[serde(default)]
    pub work_orders: Vec<WorkOrderDef>,
    /// Reminder sets.
    #[serde(default)]
    pub reminder_sets: Vec<ReminderSet>,
    /// Roles and their permissions.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// The catalogue of approved WhatsApp templates and their parameters.
    #[serde(default)]
    pub whatsapp_templates: Vec<WhatsappTemplateDef>,
    /// Business hours and public holidays. Declared at most once in the whole set.
    #[serde(default)]
    pub calendar: Option<At<Calendar>>,
    /// Recurring work (cron), run once per tick however many nodes run.
    #[serde(default)]
    pub schedules: Vec<ScheduleDef>,
}

// ---------------------------------------------------------------- pipelines

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    pub id: At<PipelineId>,
    pub name: I18n,
    /// Stages in display order (left to right on the board).
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub transitions: Vec<Transition>,
    /// What a kanban card shows and how a column is sorted.
    #[serde(default)]
    pub card: CardLayout,
    /// Rules run when a new lead enters this pipeline.
    #[serde(default)]
    pub on_new_lead: NewLeadRules,
    /// What happens when a lead returns for a customer whose card sits in a terminal stage.
    #[serde(default)]
    pub on_return: Option<At<ReturnPolicy>>,
    /// Stages removed from this pipeline and where their cards go on the next reload
    /// (`old_stage: new_stage`). A renamed stage says `renamed_from:` instead.
    #[serde(default)]
    pub stage_migrations: Vec<StageMigration>,
    /// The file this pipeline is declared in (set by the loader).
    #[serde(skip)]
    #[schemars(skip)]
    pub file: String,
}

/// `- {from: old_stage, to: new_stage}`: the cards of a stage that no longer exists move
/// to `to` when the definitions are reloaded.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageMigration {
    pub from: At<StageId>,
    pub to: At<StageId>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub id: At<StageId>,
    pub name: I18n,
    /// CSS colour of the column (`#22c55e`).
    #[serde(default)]
    pub color: Option<At<String>>,
    /// The stage new cards start in; exactly one per pipeline.
    #[serde(default)]
    pub initial: bool,
    /// A terminal stage (won / lost) has no outgoing transitions.
    #[serde(default)]
    pub terminal: bool,
    /// Fields that must be filled before a card may enter this stage.
    #[serde(default)]
    pub required_fields: Vec<At<FieldId>>,
    /// Maximum number of cards in the column (soft limit shown on the board).
    #[serde(default)]
    pub wip_limit: Option<u32>,
    /// Former ids of this stage: on reload, cards still in a stage of that id move here.
    #[serde(default)]
    pub renamed_from: Vec<At<StageId>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    pub from: At<StageId>,
    pub to: At<StageId>,
    /// A guard rule, `file.rhai#function`, that may refuse the move.
    #[serde(default)]
    pub guard: Option<At<String>>,
    /// Fields the user is asked to fill when making this move.
    #[serde(default)]
    pub asks: Vec<At<FieldId>>,
    /// Jobs enqueued when the move happens (a timeline entry is always written).
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// An effect of a transition, an outcome or a work-order step; each names a job kind.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Action {
    /// An in-app notification rendered from a message template.
    Notify(NotifyAction),
    /// A follow-up reminder for the card.
    FollowUp(FollowUpAction),
    /// A WhatsApp template message to the customer.
    WhatsappTemplate(WhatsappAction),
    /// An ad conversion event (Meta Conversions API).
    ConversionEvent(ConversionAction),
    /// An HTTP POST of the event to an external URL.
    Webhook(WebhookAction),
    /// Opens a work order from a work-order definition.
    CreateWorkOrder(CreateWorkOrderAction),
}

impl Action {
    /// The job kind (queue name) this action enqueues.
    pub fn job_kind(&self) -> &'static str {
        match self {
            Action::Notify(_) => "notify",
            Action::FollowUp(_) => "follow_up",
            Action::WhatsappTemplate(_) => "whatsapp_template",
            Action::ConversionEvent(_) => "conversion_event",
            Action::Webhook(_) => "webhook",
            Action::CreateWorkOrder(_) => "create_work_order",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyAction {
    pub to: Vec<Recipient>,
    /// Message template name: `templates/messages/<name>.tr.txt` and `.en.txt`.
    pub message: At<TemplateName>,
}

/// Who receives a notification or is assigned a reminder.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Recipient {
    /// The card's owners.
    Owners,
    /// Every user with the given role: `{role: manager}`.
    Role(At<RoleId>),
    /// The user who made the change.
    Actor,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpAction {
    pub title: I18n,
    /// Due-time expression (see workflows/README.md).
    pub due: At<Due>,
    #[serde(default = "default_owners")]
    pub assignee: Vec<Recipient>,
}

fn default_owners() -> Vec<Recipient> {
    vec![Recipient::Owners]
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatsappAction {
    pub template: At<WhatsappTemplateName>,
    /// One minijinja expression per template parameter, e.g. `"{{ customer.name }}"`.
    #[serde(default)]
    pub parameters: Vec<WhatsappParam>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatsappParam {
    pub name: At<String>,
    pub value: At<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversionAction {
    pub event: MetaEvent,
    /// Numeric field carrying the event value (e.g. `deposit_amount`).
    #[serde(default)]
    pub value_field: Option<At<FieldId>>,
    /// ISO 4217 currency of the value.
    #[serde(default)]
    pub currency: Option<At<String>>,
}

/// Meta standard events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum MetaEvent {
    Lead,
    Contact,
    Schedule,
    SubmitApplication,
    CompleteRegistration,
    InitiateCheckout,
    AddPaymentInfo,
    Purchase,
    Subscribe,
    StartTrial,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookAction {
    pub url: At<String>,
    /// Name of the environment variable holding the HMAC secret (never the secret itself).
    #[serde(default)]
    pub secret_env: Option<At<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkOrderAction {
    pub definition: At<WorkOrderId>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardLayout {
    /// Fields shown on a card, in order (built-in or custom).
    #[serde(default)]
    pub fields: Vec<At<FieldId>>,
    /// Order of cards within a column.
    #[serde(default)]
    pub order: CardOrder,
    /// Badge rules (`file.rhai#function`) computed for every card.
    #[serde(default)]
    pub badges: Vec<At<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardOrder {
    pub by: At<FieldId>,
    #[serde(default)]
    pub direction: Direction,
}

impl Default for CardOrder {
    fn default() -> Self {
        CardOrder {
            by: At {
                value: FieldId("updated_at".into()),
                pos: Pos::FILE,
            },
            direction: Direction::Desc,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Asc,
    #[default]
    Desc,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLeadRules {
    /// Scoring rule returning `#{emotional, logical}`.
    #[serde(default)]
    pub scoring: Option<At<String>>,
    /// Assignment rule returning a user id.
    #[serde(default)]
    pub assignment: Option<At<String>>,
}

/// Policy for a returning lead whose card is in a terminal stage.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ReturnPolicy {
    /// Move the card back into `stage` and open an activity of kind `activity`.
    Reopen {
        stage: At<StageId>,
        activity: At<ActivityKindId>,
    },
    /// Leave the card where it is; only record the activity on the timeline.
    RecordOnly { activity: At<ActivityKindId> },
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Intake {
    /// Pipeline a lead enters when no source route matches.
    pub default_pipeline: At<PipelineId>,
    /// Source-specific routes, checked in order.
    #[serde(default)]
    pub by_source: Vec<SourceRoute>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceRoute {
    pub source: At<SourceId>,
    pub pipeline: At<PipelineId>,
}

// ---------------------------------------------------------------- fields & activities

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub id: At<FieldId>,
    #[serde(rename = "type")]
    pub kind: FieldType,
    pub label: I18n,
    /// Stage ids (of any pipeline) this field must be filled to enter.
    #[serde(default)]
    pub required_on_entry: Vec<At<StageId>>,
    /// Allowed values for `type: choice`.
    #[serde(default)]
    pub options: Vec<ChoiceOption>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    LongText,
    Number,
    Money,
    Date,
    Datetime,
    Boolean,
    Phone,
    Email,
    Choice,
    File,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChoiceOption {
    pub id: At<FieldId>,
    pub label: I18n,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityKind {
    pub id: At<ActivityKindId>,
    pub name: I18n,
    #[serde(default)]
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub id: At<OutcomeId>,
    pub name: I18n,
    /// Rule (`file.rhai#function`) run when this outcome is entered; it may move the card.
    #[serde(default)]
    pub rule: Option<At<String>>,
    /// Jobs enqueued when this outcome is entered.
    #[serde(default)]
    pub actions: Vec<Action>,
}

// ---------------------------------------------------------------- work orders

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderDef {
    pub id: At<WorkOrderId>,
    pub name: I18n,
    pub steps: Vec<Step>,
    /// Jobs enqueued when every step is done.
    #[serde(default)]
    pub on_complete: Vec<Action>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: At<StepId>,
    pub name: I18n,
    /// Role whose members may do the step (one of `role` / `user`).
    #[serde(default)]
    pub role: Option<At<RoleId>>,
    /// A specific user (by login/email) who does the step.
    #[serde(default)]
    pub user: Option<At<String>>,
    /// Steps that must be done first. Without it a step follows the previous one.
    #[serde(default)]
    pub depends_on: Option<Vec<At<StepId>>>,
    /// Field ids (free-form slugs) the step requires before it can be checked off.
    #[serde(default)]
    pub required_fields: Vec<At<FieldId>>,
    /// File slots the step requires (`teslim_tutanagi`).
    #[serde(default)]
    pub required_files: Vec<At<FieldId>>,
    /// Due-time expression relative to when the step becomes ready (`+2d at 17:00`).
    #[serde(default)]
    pub due: Option<At<Due>>,
    /// Guard rule that may refuse checking the step off.
    #[serde(default)]
    pub guard: Option<At<String>>,
    /// Jobs enqueued when the step is done.
    #[serde(default)]
    pub on_complete: Vec<Action>,
}

// ---------------------------------------------------------------- reminders

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReminderSet {
    pub id: At<ReminderId>,
    pub name: I18n,
    pub reminders: Vec<ReminderDef>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReminderDef {
    pub id: At<ReminderId>,
    pub title: I18n,
    pub trigger: Trigger,
    /// Due-time expression (see workflows/README.md).
    pub due: At<Due>,
    #[serde(default = "default_owners")]
    pub assignee: Vec<Recipient>,
    /// Optional message template used for the notification when the reminder is due.
    #[serde(default)]
    pub message: Option<At<TemplateName>>,
    /// Move a due time that falls outside business hours (or on a holiday) to the next
    /// opening.
    #[serde(default)]
    pub within_business_hours: bool,
}

// ---------------------------------------------------------------- schedules

/// A recurring task: `- {id: overdue_sweep, cron: "*/5 * * * *", run: overdue_sweep}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDef {
    pub id: At<ScheduleId>,
    /// Cron expression in the company time zone: `minute hour day-of-month month
    /// day-of-week`, optionally with a leading seconds field (`0 30 8 * * Mon-Fri`).
    pub cron: At<String>,
    /// What to run.
    pub run: ScheduledTask,
}

/// The built-in recurring tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduledTask {
    /// Creates `no_contact` reminders, cancels those whose condition no longer holds,
    /// and announces reminders that became overdue.
    OverdueSweep,
    /// Sends every active user a notification with their day: appointments, reminders
    /// due today and overdue ones.
    DailyDigest,
}

/// What creates a reminder.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Trigger {
    /// A card enters a stage.
    StageEntered(StageRef),
    /// A (date/datetime) field gets a value or changes.
    FieldSet(At<FieldId>),
    /// An activity outcome is entered.
    ActivityOutcome {
        activity: At<ActivityKindId>,
        outcome: At<OutcomeId>,
    },
    /// No contact with the customer for `for` (e.g. `3d`) while the card is in the stage.
    NoContact {
        #[serde(rename = "for")]
        for_: At<String>,
        #[serde(default)]
        pipeline: Option<At<PipelineId>>,
        #[serde(default)]
        stage: Option<At<StageId>>,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageRef {
    pub pipeline: At<PipelineId>,
    pub stage: At<StageId>,
}

// ---------------------------------------------------------------- roles

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub id: At<RoleId>,
    pub name: I18n,
    /// `own`: only records the user owns; `all`: every record.
    pub scope: Scope,
    #[serde(default)]
    pub permissions: Permissions,
    /// The file this role is declared in (set by the loader).
    #[serde(skip)]
    #[schemars(skip)]
    pub file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Own,
    All,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    View,
    Edit,
    Bulk,
    Export,
}

/// Module × permitted actions.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    #[serde(default)]
    pub customers: Vec<Permission>,
    #[serde(default)]
    pub pipeline: Vec<Permission>,
    #[serde(default)]
    pub bulk: Vec<Permission>,
    #[serde(default)]
    pub work_orders: Vec<Permission>,
    #[serde(default)]
    pub inventory: Vec<Permission>,
    #[serde(default)]
    pub reports: Vec<Permission>,
    #[serde(default)]
    pub inbox: Vec<Permission>,
    #[serde(default)]
    pub broadcast: Vec<Permission>,
    #[serde(default)]
    pub admin: Vec<Permission>,
    #[serde(default)]
    pub definitions: Vec<Permission>,
}

/// The modules permissions are granted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    Customers,
    Pipeline,
    Bulk,
    WorkOrders,
    Inventory,
    Reports,
    Inbox,
    Broadcast,
    Admin,
    Definitions,
}

impl Permissions {
    pub fn allows(&self, module: Module, permission: Permission) -> bool {
        let list = match module {
            Module::Customers => &self.customers,
            Module::Pipeline => &self.pipeline,
            Module::Bulk => &self.bulk,
            Module::WorkOrders => &self.work_orders,
            Module::Inventory => &self.inventory,
            Module::Reports => &self.reports,
            Module::Inbox => &self.inbox,
            Module::Broadcast => &self.broadcast,
            Module::Admin => &self.admin,
            Module::Definitions => &self.definitions,
        };
        list.contains(&permission)
    }
}

// ---------------------------------------------------------------- messaging & calendar

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatsappTemplateDef {
    /// Name as approved in WhatsApp Business Manager.
    pub name: At<WhatsappTemplateName>,
    /// Language code (`tr`, `en_US`).
    pub language: String,
    /// Parameter names in the order of `{{1}}`, `{{2}}`...
    #[serde(default)]
    pub parameters: Vec<At<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// IANA time zone; `Europe/Istanbul` by default.
    #[serde(default = "default_tz")]
    pub time_zone: At<String>,
    pub business_hours: BusinessHours,
    #[serde(default)]
    pub holidays: Vec<Holiday>,
}

fn default_tz() -> At<String> {
    At {
        value: "Europe/Istanbul".into(),
        pos: Pos::FILE,
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    pub days: Vec<Weekday>,
    /// `HH:MM`
    pub opens: At<String>,
    /// `HH:MM`
    pub closes: At<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Holiday {
    /// `YYYY-MM-DD`
    pub date: At<String>,
    pub name: I18n,
    /// A half day (arife): closes at 13:00.
    #[serde(default)]
    pub half_day: bool,
}
