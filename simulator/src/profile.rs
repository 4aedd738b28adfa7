//! Load profiles: the size of the simulated organisation and how hard it is driven.
//!
//! A [`Profile`] is plain data. The named ones (`smoke`, `standard`, `large`) are starting
//! points; every field can be overridden on the command line, so a profile is "what the run
//! looks like unless told otherwise", not a fixed benchmark definition.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Which IdP's request shapes the simulator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdpMix {
    /// Every user and group is driven the way Microsoft Entra ID drives them.
    Entra,
    /// Every user and group is driven the way Okta drives them.
    Okta,
    /// Each user and group is assigned one of the two, deterministically from the seed, so one
    /// run exercises both dialects against the same server (and the same groups see both).
    Mixed,
}

impl FromStr for IdpMix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "entra" | "azure" | "aad" => Ok(IdpMix::Entra),
            "okta" => Ok(IdpMix::Okta),
            "mixed" | "both" => Ok(IdpMix::Mixed),
            other => Err(format!("unknown IdP {other:?}: expected entra, okta or mixed")),
        }
    }
}

impl fmt::Display for IdpMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdpMix::Entra => "entra",
            IdpMix::Okta => "okta",
            IdpMix::Mixed => "mixed",
        })
    }
}

/// Everything that shapes a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub name: String,
    /// Users in the org chart.
    pub users: usize,
    /// Groups in the org chart.
    pub groups: usize,
    /// Members of the largest group; the others follow a Zipf law below it.
    pub largest_group: usize,
    /// Zipf exponent of group sizes: group of rank `k` (from 1) has about
    /// `largest_group / k^s` members. 1.0 gives the heavy tail seen in real directories (one
    /// "All Employees" group, a few department-sized ones, a long tail of small teams).
    pub zipf_exponent: f64,
    /// Departments users are spread over (also Zipf-weighted: Engineering is the biggest).
    pub departments: usize,
    /// Members per membership PATCH when a large change is split (Entra and Okta both batch).
    pub members_per_patch: usize,
    /// PATCHes in flight at once on the same group while a large change is pushed.
    pub patches_in_flight: usize,
    /// Requests in flight at once, over all resources.
    pub concurrency: usize,
    /// Requests per second over all load phases; `None` is as fast as the server answers.
    pub rate: Option<f64>,
    /// Churn operations after the initial provisioning.
    pub churn_ops: usize,
    /// Upper bound of the churn phase in seconds.
    pub churn_seconds: Option<f64>,
    /// Upper bound of all load phases together in seconds; what was acknowledged until then
    /// is still verified.
    pub duration_seconds: Option<f64>,
    /// Users read back during verification; `None` checks every provisioned user.
    pub verify_users: Option<usize>,
    /// Members checked one by one (by filter) when a server truncates a group without offering
    /// a way to page its members.
    pub verify_member_sample: usize,
    pub idp: IdpMix,
    /// A run fails when more than this fraction of requests ends in an unexpected status.
    pub max_error_rate: f64,
    /// Per-request timeout in seconds.
    pub request_timeout_seconds: f64,
    /// Retries of one request after 429/503/transport errors.
    pub max_retries: u32,
}

impl Profile {
    /// Seconds: runs in CI against a live server. The largest group is split into four
    /// concurrent PATCHes so even the smoke run exercises concurrent membership changes.
    pub fn smoke() -> Self {
        Profile {
            name: "smoke".into(),
            users: 200,
            groups: 20,
            largest_group: 150,
            zipf_exponent: 1.0,
            departments: 8,
            members_per_patch: 40,
            patches_in_flight: 4,
            concurrency: 16,
            rate: None,
            churn_ops: 300,
            churn_seconds: Some(60.0),
            duration_seconds: Some(300.0),
            verify_users: None,
            verify_member_sample: 200,
            idp: IdpMix::Mixed,
            max_error_rate: 0.0,
            request_timeout_seconds: 30.0,
            max_retries: 5,
        }
    }

    /// Minutes: a mid-sized tenant.
    pub fn standard() -> Self {
        Profile {
            name: "standard".into(),
            users: 20_000,
            groups: 300,
            largest_group: 10_000,
            departments: 16,
            members_per_patch: 1000,
            patches_in_flight: 4,
            concurrency: 32,
            churn_ops: 5_000,
            churn_seconds: Some(600.0),
            duration_seconds: None,
            max_error_rate: 0.001,
            ..Profile::smoke()
        }
    }

    /// Hours: a million users in one group. Verification reads a sample of the users (every
    /// group is still checked in full).
    pub fn large() -> Self {
        Profile {
            name: "large".into(),
            users: 1_000_000,
            groups: 2_000,
            largest_group: 1_000_000,
            departments: 20,
            members_per_patch: 1000,
            patches_in_flight: 8,
            concurrency: 64,
            churn_ops: 50_000,
            churn_seconds: Some(3_600.0),
            duration_seconds: None,
            verify_users: Some(20_000),
            max_error_rate: 0.001,
            request_timeout_seconds: 120.0,
            ..Profile::smoke()
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "smoke" => Some(Profile::smoke()),
            "standard" => Some(Profile::standard()),
            "large" => Some(Profile::large()),
            _ => None,
        }
    }

    /// Rejects profiles that cannot be generated, with a message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.users == 0 {
            return Err("users must be at least 1".into());
        }
        if self.groups == 0 {
            return Err("groups must be at least 1".into());
        }
        if self.largest_group > self.users {
            return Err(format!(
                "the largest group ({}) cannot have more members than there are users ({})",
                self.largest_group, self.users
            ));
        }
        if self.users > u32::MAX as usize {
            return Err("at most 2^32-1 users".into());
        }
        if self.members_per_patch == 0 || self.patches_in_flight == 0 || self.concurrency == 0 {
            return Err("members-per-patch, patches-in-flight and concurrency must be at least 1".into());
        }
        if !(self.zipf_exponent > 0.0 && self.zipf_exponent.is_finite()) {
            return Err("the Zipf exponent must be a positive number".into());
        }
        if matches!(self.rate, Some(rate) if !(rate > 0.0 && rate.is_finite())) {
            return Err("rate must be a positive number of requests per second".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_profiles_are_valid() {
        for name in ["smoke", "standard", "large"] {
            let profile = Profile::named(name).unwrap();
            assert_eq!(profile.name, name);
            profile.validate().unwrap();
        }
        assert_eq!(Profile::large().largest_group, 1_000_000);
        assert!(Profile::named("huge").is_none());
    }

    #[test]
    fn invalid_profiles_are_rejected() {
        let mut profile = Profile::smoke();
        profile.largest_group = profile.users + 1;
        assert!(profile.validate().unwrap_err().contains("largest group"));
        let mut profile = Profile::smoke();
        profile.rate = Some(0.0);
        assert!(profile.validate().is_err());
    }

    #[test]
    fn idp_names_parse() {
        assert_eq!("Entra".parse::<IdpMix>().unwrap(), IdpMix::Entra);
        assert_eq!("okta".parse::<IdpMix>().unwrap(), IdpMix::Okta);
        assert!("onelogin".parse::<IdpMix>().is_err());
    }
}
