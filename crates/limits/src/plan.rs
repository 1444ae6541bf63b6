//! Plans: a tenant's request rate and burst and its count quotas, with built-in defaults that
//! configuration (`PLANS`, JSON) overrides or extends.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::gcra::Limit;

/// The environment variable that holds the plan configuration (JSON, see [`Plans::from_json`]).
pub const PLANS_ENV: &str = "PLANS";

/// The fastest rate a plan may have (requests a second): the emission interval stays >= 1 µs.
pub const MAX_RATE: f64 = 1_000_000.0;
/// The slowest rate a plan may have: one request a day.
pub const MIN_RATE: f64 = 1.0 / 86_400.0;
/// The largest burst a plan may have.
pub const MAX_BURST: u32 = 1_000_000;

/// A plan's name: 1 to 32 characters of `a-z`, `0-9` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlanName(String);

impl PlanName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PlanName {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, PlanError> {
        let ok =
            (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok { Ok(Self(s.to_string())) } else { Err(PlanError::Name(s.chars().take(40).collect())) }
    }
}

impl TryFrom<String> for PlanName {
    type Error = PlanError;

    fn try_from(s: String) -> Result<Self, PlanError> {
        s.parse()
    }
}

impl From<PlanName> for String {
    fn from(n: PlanName) -> String {
        n.0
    }
}

impl fmt::Display for PlanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A count quota of a plan. Its [`name`](Quota::name) is stable: error bodies carry it
/// (`{"code": "quota_exceeded", "quota": "members", "plan": "free", ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    /// Todos per tenant.
    Todos,
    /// Members per tenant.
    Members,
    /// Pending (unaccepted, unexpired) invitations per tenant.
    PendingInvitations,
    /// Tenants a user may create.
    TenantsPerUser,
}

impl Quota {
    /// Every quota.
    pub const ALL: [Quota; 4] = [Quota::Todos, Quota::Members, Quota::PendingInvitations, Quota::TenantsPerUser];

    /// The stable snake_case name, as in configuration and error bodies.
    pub fn name(self) -> &'static str {
        match self {
            Quota::Todos => "todos",
            Quota::Members => "members",
            Quota::PendingInvitations => "pending_invitations",
            Quota::TenantsPerUser => "tenants_per_user",
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A plan: request rate and burst per tenant, and its count quotas. Built only through
/// [`Plans`], so every plan is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    name: PlanName,
    rate: f64,
    burst: u32,
    quotas: [u32; 4],
}

impl Plan {
    /// The plan's name.
    pub fn name(&self) -> &PlanName {
        &self.name
    }

    /// Requests a second, as configured.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Requests an idle tenant may send at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The GCRA limit: emission interval `1 / rate` rounded to a whole microsecond (so that the
    /// SQL, in microseconds, computes the same numbers), and the burst.
    pub fn limit(&self) -> Limit {
        let micros = (1_000_000.0 / self.rate).round().max(1.0) as u64;
        Limit::new(Duration::from_micros(micros), self.burst).expect("validated: interval >= 1 µs, burst >= 1")
    }

    /// The plan's value of a count quota (>= 1).
    pub fn quota(&self, quota: Quota) -> u32 {
        self.quotas[quota as usize]
    }
}

/// The built-in plans: `(name, rate a second, burst, todos, members, pending invitations,
/// tenants per user)`. Bursts are 8 seconds of rate, so that a lease (at most burst / 8) is one
/// second of a tenant's rate.
///
/// - `free`: 5 requests a second, burst 40; 1,000 todos, 5 members, 10 pending invitations, 3
///   tenants per user.
/// - `standard`: 50 a second, burst 400; 100,000 todos, 50 members, 100 invitations, 10 tenants.
///   The default: a deployment that upgrades to plans keeps what its tenants did before, and the
///   operator moves tenants to `free` (or makes it the default) deliberately.
/// - `premium`: 200 a second, burst 1,600; 1,000,000 todos, 1,000 members, 1,000 invitations,
///   50 tenants.
pub const BUILTIN: [(&str, f64, u32, [u32; 4]); 3] = [
    ("free", 5.0, 40, [1_000, 5, 10, 3]),
    ("standard", 50.0, 400, [100_000, 50, 100, 10]),
    ("premium", 200.0, 1_600, [1_000_000, 1_000, 1_000, 50]),
];

/// The default plan of the built-in catalogue.
pub const BUILTIN_DEFAULT: &str = "standard";

/// What is wrong with a plan configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// A plan name outside `[a-z0-9-]{1,32}`.
    #[error("plan name {0:?} is not 1 to 32 characters of a-z, 0-9 and '-'")]
    Name(String),
    /// Not the expected JSON.
    #[error("{PLANS_ENV}: {0}")]
    Json(String),
    /// A rate that is not a number between [`MIN_RATE`] and [`MAX_RATE`].
    #[error("plan {plan}: rate {rate} is not between one a day (0.0000116) and 1000000 requests a second")]
    Rate { plan: PlanName, rate: f64 },
    /// A burst outside 1 ..= [`MAX_BURST`].
    #[error("plan {plan}: burst {burst} is not between 1 and {MAX_BURST}")]
    Burst { plan: PlanName, burst: i64 },
    /// A quota below 1 or above `u32::MAX`.
    #[error("plan {plan}: {quota} {value} is not between 1 and 4294967295")]
    Quota { plan: PlanName, quota: Quota, value: i64 },
    /// A plan that is not built in, missing a setting.
    #[error("plan {plan} is not built in, so it needs {field} (it has no default to inherit)")]
    Missing { plan: PlanName, field: &'static str },
    /// A default plan that is not in the catalogue.
    #[error("default plan {0} is not defined")]
    UnknownDefault(PlanName),
}

/// One plan as configured: every field optional, missing ones inherited from the built-in plan
/// of that name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanConfig {
    rate: Option<f64>,
    burst: Option<i64>,
    todos: Option<i64>,
    members: Option<i64>,
    pending_invitations: Option<i64>,
    tenants_per_user: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    default: Option<PlanName>,
    #[serde(default)]
    plans: BTreeMap<PlanName, PlanConfig>,
}

/// The plan catalogue and its default plan (the plan of a new tenant).
#[derive(Debug, Clone, PartialEq)]
pub struct Plans {
    plans: BTreeMap<PlanName, Plan>,
    default: PlanName,
}

impl Plans {
    /// The built-in catalogue ([`BUILTIN`], default [`BUILTIN_DEFAULT`]).
    pub fn builtin() -> Self {
        let plans = BUILTIN
            .iter()
            .map(|&(name, rate, burst, quotas)| {
                let name: PlanName = name.parse().expect("built-in names are valid");
                (name.clone(), Plan { name, rate, burst, quotas })
            })
            .collect();
        Self { plans, default: BUILTIN_DEFAULT.parse().expect("built-in name") }
    }

    /// The built-in catalogue with a configuration applied. The configuration is a JSON object
    /// with two optional members:
    ///
    /// ```json
    /// {"default": "standard",
    ///  "plans": {"free": {"rate": 2},
    ///            "enterprise": {"rate": 1000, "burst": 8000, "todos": 10000000, "members": 10000,
    ///                           "pending_invitations": 10000, "tenants_per_user": 100}}}
    /// ```
    ///
    /// A built-in plan named again keeps the settings not given; a new plan must give all six.
    /// Rates are requests a second (fractions allowed), between one a day and 1,000,000; burst
    /// and quotas are whole numbers >= 1. Unknown members are errors, not ignored.
    pub fn from_json(json: &str) -> Result<Self, PlanError> {
        let config: Config = serde_json::from_str(json).map_err(|e| PlanError::Json(e.to_string()))?;
        let mut plans = Self::builtin();
        for (name, c) in config.plans {
            let base = plans.plans.get(&name);
            let missing = |field| PlanError::Missing { plan: name.clone(), field };
            let rate = c.rate.or(base.map(|b| b.rate)).ok_or_else(|| missing("rate"))?;
            if !(MIN_RATE..=MAX_RATE).contains(&rate) {
                return Err(PlanError::Rate { plan: name, rate });
            }
            let burst = c.burst.or(base.map(|b| i64::from(b.burst))).ok_or_else(|| missing("burst"))?;
            let burst = u32::try_from(burst)
                .ok()
                .filter(|b| (1..=MAX_BURST).contains(b))
                .ok_or(PlanError::Burst { plan: name.clone(), burst })?;
            let given = [c.todos, c.members, c.pending_invitations, c.tenants_per_user];
            let mut quotas = [0; 4];
            for (i, quota) in Quota::ALL.into_iter().enumerate() {
                let value = given[i].or(base.map(|b| i64::from(b.quotas[i]))).ok_or_else(|| missing(quota.name()))?;
                quotas[i] = u32::try_from(value).ok().filter(|v| *v >= 1).ok_or(PlanError::Quota {
                    plan: name.clone(),
                    quota,
                    value,
                })?;
            }
            plans.plans.insert(name.clone(), Plan { name, rate, burst, quotas });
        }
        if let Some(default) = config.default {
            plans.default = default;
        }
        if !plans.plans.contains_key(&plans.default) {
            return Err(PlanError::UnknownDefault(plans.default));
        }
        Ok(plans)
    }

    /// [`from_json`](Self::from_json) for a configured value; unset or blank means the built-in
    /// catalogue.
    pub fn from_config(value: Option<&str>) -> Result<Self, PlanError> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self::builtin()),
            Some(json) => Self::from_json(json),
        }
    }

    /// [`from_config`](Self::from_config) of the `PLANS` environment variable.
    pub fn from_env() -> Result<Self, PlanError> {
        Self::from_config(std::env::var(PLANS_ENV).ok().as_deref())
    }

    /// The plan of this name.
    pub fn get(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|(n, _)| n.as_str() == name).map(|(_, p)| p)
    }

    /// The default plan, the plan of a new tenant.
    pub fn default_plan(&self) -> &Plan {
        &self.plans[&self.default]
    }

    /// Every plan, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Plan> {
        self.plans.values()
    }
}

impl Default for Plans {
    fn default() -> Self {
        Self::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalogue() {
        let plans = Plans::builtin();
        assert_eq!(plans.default_plan().name().as_str(), "standard");
        assert_eq!(plans.iter().map(|p| p.name().as_str()).collect::<Vec<_>>(), ["free", "premium", "standard"]);
        let free = plans.get("free").unwrap();
        assert_eq!(free.limit(), Limit::new(Duration::from_millis(200), 40).unwrap());
        assert_eq!(free.limit().max_lease(), 5);
        assert_eq!(free.quota(Quota::Members), 5);
        assert_eq!(free.quota(Quota::TenantsPerUser), 3);
        assert_eq!(plans.get("premium").unwrap().limit().interval(), Duration::from_micros(5_000));
        assert_eq!(plans.get("standard").unwrap().quota(Quota::PendingInvitations), 100);
        assert!(plans.get("gold").is_none());
        assert_eq!(Plans::from_config(None).unwrap(), plans);
        assert_eq!(Plans::from_config(Some("  ")).unwrap(), plans);
        assert_eq!(Plans::from_json("{}").unwrap(), plans);
    }

    #[test]
    fn configuration_overrides_and_extends() {
        let plans = Plans::from_json(
            r#"{"default": "team", "plans": {
                "free": {"rate": 0.5, "todos": 50},
                "team": {"rate": 3, "burst": 24, "todos": 10, "members": 20, "pending_invitations": 5,
                         "tenants_per_user": 2}}}"#,
        )
        .unwrap();
        let free = plans.get("free").unwrap();
        assert_eq!((free.rate(), free.burst(), free.quota(Quota::Todos)), (0.5, 40, 50));
        assert_eq!(free.quota(Quota::Members), 5, "inherited from the built-in plan");
        assert_eq!(free.limit().interval(), Duration::from_secs(2));
        let team = plans.default_plan();
        assert_eq!(team.name().as_str(), "team");
        // 1 / 3 s rounds to 333,333 µs.
        assert_eq!(team.limit().interval(), Duration::from_micros(333_333));
        assert_eq!(team.quota(Quota::TenantsPerUser), 2);
        assert_eq!(plans.iter().count(), 4);
    }

    #[test]
    fn configuration_errors_say_what_is_wrong() {
        let err = |json: &str| Plans::from_json(json).unwrap_err().to_string();
        assert_eq!(err(r#"{"default": "gold"}"#), "default plan gold is not defined");
        assert!(err(r#"{"plans": {"Gold": {}}}"#).contains(r#"plan name "Gold" is not"#));
        assert!(err(r#"{"plans": {"free": {"rate": 0}}}"#).starts_with("plan free: rate 0 is not between"));
        assert!(err(r#"{"plans": {"free": {"rate": -3}}}"#).starts_with("plan free: rate -3"));
        assert_eq!(err(r#"{"plans": {"free": {"burst": 0}}}"#), "plan free: burst 0 is not between 1 and 1000000");
        assert_eq!(
            err(r#"{"plans": {"free": {"members": 0}}}"#),
            "plan free: members 0 is not between 1 and 4294967295"
        );
        assert_eq!(
            err(r#"{"plans": {"gold": {"rate": 1, "burst": 8}}}"#),
            "plan gold is not built in, so it needs todos (it has no default to inherit)"
        );
        assert!(err(r#"{"plans": {"free": {"rps": 3}}}"#).contains("unknown field `rps`"));
        assert!(err(r#"{"plan": {}}"#).contains("unknown field `plan`"));
        assert!(err("[").starts_with("PLANS: "));
    }

    #[test]
    fn plan_names() {
        for ok in ["a", "free", "plan-2", &"x".repeat(32)] {
            assert_eq!(ok.parse::<PlanName>().unwrap().as_str(), ok);
        }
        for bad in ["", "Free", "a b", "a_b", "é", &"x".repeat(33)] {
            assert!(bad.parse::<PlanName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quota_names_are_stable() {
        let names: Vec<_> = Quota::ALL.iter().map(|q| q.name()).collect();
        assert_eq!(names, ["todos", "members", "pending_invitations", "tenants_per_user"]);
        for q in Quota::ALL {
            assert_eq!(serde_json::to_string(&q).unwrap(), format!("\"{q}\""));
        }
    }
}
