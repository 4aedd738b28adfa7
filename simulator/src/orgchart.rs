//! The seeded org chart: users, departments, managers and groups.
//!
//! Everything is a pure function of the seed. Users are not stored: [`OrgChart::user`] derives
//! user `i` at revision `r` from its own ChaCha stream, so a million-user chart costs only its
//! group membership lists, and the expected attributes of any user can be recomputed at
//! verification time. ChaCha8 (from `rand_chacha`) is used rather than `StdRng` because its
//! output is documented to be stable across releases, so a seed names the same org chart on
//! every machine and version.
//!
//! Shape of the organisation:
//! - managers form a tree with a fixed span of control ([`SPAN_OF_CONTROL`]): user 0 is the CEO,
//!   user `i > 0` reports to `(i - 1) / SPAN_OF_CONTROL`; people with reports get manager titles;
//! - departments are Zipf-weighted (a big Engineering, a small Legal);
//! - group sizes follow a Zipf law under the configured largest group, with ±15% jitter so that
//!   sizes are not suspiciously exact; the largest is "All Employees" with exactly
//!   `largest_group` members;
//! - names carry the seed (`s42.simulated.example` mail domain, `(s42)` after group names), so
//!   several seeds can share one tenant and a re-run of a seed finds its own resources.

use crate::profile::{IdpMix, Profile};
use crate::shapes::Style;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Direct reports per manager.
pub const SPAN_OF_CONTROL: u32 = 8;

/// Salts separating the random streams of users, groups and churn derived from one seed.
const USER_SALT: u64 = 0x5553_4552; // "USER"
const REVISION_SALT: u64 = 0x5245_5649; // "REVI"
const GROUP_SALT: u64 = 0x4752_4f55; // "GROU"
pub(crate) const CHURN_SALT: u64 = 0x4348_5552; // "CHUR"

/// SplitMix64 finaliser: spreads (seed, stream) pairs over the whole seed space so that
/// neighbouring user indices get unrelated streams.
pub(crate) fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random stream for one purpose of one seed.
pub(crate) fn stream(seed: u64, salt: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(mix(seed, salt), index))
}

/// Given names; a few carry diacritics because directories do, and values must be stored as
/// sent (E17). `userName`s use an ASCII folding of them.
const GIVEN_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Wei",
    "Mei",
    "Hiroshi",
    "Yuki",
    "Aarav",
    "Priya",
    "Mohammed",
    "Fatima",
    "Olusegun",
    "Amara",
    "Sofía",
    "José",
    "Zoë",
    "Björn",
    "Søren",
    "Ingrid",
    "Chloé",
    "François",
    "Łukasz",
    "Ana",
    "Lucas",
    "Emma",
    "Noah",
    "Olivia",
    "Liam",
    "Ava",
    "Mateo",
    "Isabella",
    "Elif",
    "Kemal",
    "Nguyen",
    "Linh",
    "Dmitri",
    "Olga",
    "Kwame",
    "Ama",
    "Rahul",
    "Ananya",
    "Tomás",
    "Inês",
];

const FAMILY_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Wang",
    "Li",
    "Zhang",
    "Chen",
    "Tanaka",
    "Suzuki",
    "Sato",
    "Kim",
    "Park",
    "Patel",
    "Sharma",
    "Singh",
    "Khan",
    "Okafor",
    "Adeyemi",
    "Mensah",
    "Müller",
    "Schmidt",
    "Schäfer",
    "Nielsen",
    "Johansson",
    "Lindqvist",
    "Dubois",
    "Lefèvre",
    "Rossi",
    "Bianchi",
    "Kowalski",
    "Nowak",
    "Silva",
    "Santos",
    "Pereira",
    "O'Brien",
    "Murphy",
    "Ivanov",
    "Petrova",
    "Yılmaz",
    "Demir",
    "Nguyen",
    "Tran",
];

/// Department names, most common first (the Zipf weights follow this order).
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Customer Support",
    "Operations",
    "Marketing",
    "Product",
    "Finance",
    "Human Resources",
    "IT",
    "Customer Success",
    "Data",
    "Design",
    "Security",
    "Research",
    "Procurement",
    "Facilities",
    "Quality",
    "Communications",
    "Legal",
    "Executive",
];

const ROLES: &[&str] = &[
    "Analyst",
    "Specialist",
    "Engineer",
    "Coordinator",
    "Associate",
    "Consultant",
    "Administrator",
    "Representative",
    "Developer",
    "Designer",
    "Scientist",
    "Partner",
];

const LEVELS: &[&str] = &["", "", "", "Senior ", "Senior ", "Staff ", "Principal ", "Junior ", "Lead "];

const APPS: &[&str] = &[
    "Salesforce",
    "Slack",
    "GitHub",
    "Jira",
    "Confluence",
    "Zoom",
    "Workday",
    "ServiceNow",
    "Figma",
    "Tableau",
    "Snowflake",
    "AWS",
    "Datadog",
    "Zendesk",
    "DocuSign",
    "Box",
    "Notion",
    "Miro",
];

const TEAM_WORDS: &[&str] = &[
    "Platform",
    "Payments",
    "Identity",
    "Growth",
    "Mobile",
    "Web",
    "Infrastructure",
    "Reliability",
    "Billing",
    "Search",
    "Analytics",
    "Onboarding",
    "Enterprise",
    "Partnerships",
    "Compliance",
    "Tooling",
];

/// One user as generated: the attributes an IdP would provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub index: u32,
    pub style: Style,
    pub user_name: String,
    pub external_id: String,
    pub given_name: String,
    pub family_name: String,
    pub display_name: String,
    /// The work email; changes with revisions (E6 is how Entra updates it).
    pub email: String,
    pub title: String,
    pub department: String,
    pub employee_number: String,
    /// The manager in the org chart (churn may reassign it; the model tracks that).
    pub manager: Option<u32>,
}

/// One generated group and its initial members (user indices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub index: u32,
    pub style: Style,
    pub display_name: String,
    pub external_id: String,
    pub members: Vec<u32>,
}

/// The generated organisation.
#[derive(Debug, Clone)]
pub struct OrgChart {
    pub seed: u64,
    /// Mail and userName domain: derived from the seed so that two seeds never collide on one
    /// server, while re-running a seed finds its own users (and adopts them, as an IdP would).
    pub domain: String,
    pub users: u32,
    pub departments: Vec<String>,
    department_weights: Vec<f64>,
    pub groups: Vec<GroupSpec>,
    idp: IdpMix,
}

impl OrgChart {
    /// Generates the org chart of `profile` for `seed`. Costs O(total memberships).
    pub fn generate(seed: u64, profile: &Profile) -> OrgChart {
        let users = profile.users as u32;
        let departments: Vec<String> = (0..profile.departments.max(1))
            .map(|index| match DEPARTMENTS.get(index) {
                Some(name) => (*name).to_owned(),
                None => {
                    format!("{} {}", DEPARTMENTS[index % DEPARTMENTS.len()], index / DEPARTMENTS.len() + 1)
                }
            })
            .collect();
        let department_weights = zipf_weights(departments.len(), 1.0);
        let sizes = group_sizes(seed, profile);
        let mut groups = Vec::with_capacity(sizes.len());
        for (rank, size) in sizes.into_iter().enumerate() {
            let mut rng = stream(seed, GROUP_SALT, rank as u64);
            let style = pick_style(profile.idp, &mut rng);
            let display_name = group_name(seed, rank, &departments, &mut rng);
            let external_id = external_id(style, &mut rng);
            let mut members: Vec<u32> = rand::seq::index::sample(&mut rng, users as usize, size)
                .into_iter()
                .map(|index| index as u32)
                .collect();
            // Sorted, so the order the members are pushed in is the directory's order (stable
            // across runs and easy to read in a failing diff).
            members.sort_unstable();
            groups.push(GroupSpec { index: rank as u32, style, display_name, external_id, members });
        }
        OrgChart {
            seed,
            domain: format!("s{seed}.simulated.example"),
            users,
            departments,
            department_weights,
            groups,
            idp: profile.idp,
        }
    }

    /// The manager of `index` in the generated tree.
    pub fn manager_of(&self, index: u32) -> Option<u32> {
        (index > 0).then(|| (index - 1) / SPAN_OF_CONTROL)
    }

    /// Whether `index` has direct reports.
    pub fn has_reports(&self, index: u32) -> bool {
        (index as u64) * SPAN_OF_CONTROL as u64 + 1 < self.users as u64
    }

    /// User `index` at `revision` (0 as first provisioned; each attribute update bumps it).
    /// Identity (names, userName, externalId, employee number) is fixed; title, department,
    /// work email and preferred given name change with the revision.
    pub fn user(&self, index: u32, revision: u32) -> UserSpec {
        let mut rng = stream(self.seed, USER_SALT, index as u64);
        let style = pick_style(self.idp, &mut rng);
        let legal_given = *GIVEN_NAMES.choose(&mut rng).expect("names");
        let family_name = (*FAMILY_NAMES.choose(&mut rng).expect("names")).to_owned();
        let external_id = external_id(style, &mut rng);
        let user_name = format!(
            "{}.{}{}@{}",
            ascii_fold(legal_given),
            ascii_fold(&family_name).replace('\'', ""),
            index,
            self.domain
        );
        let mut rng = if revision == 0 {
            rng
        } else {
            stream(self.seed, REVISION_SALT, ((index as u64) << 32) | revision as u64)
        };
        let given_name =
            if revision == 0 { legal_given } else { *GIVEN_NAMES.choose(&mut rng).expect("names") }
                .to_owned();
        let department = self.departments[weighted_index(&self.department_weights, &mut rng)].clone();
        let title = if index == 0 {
            "Chief Executive Officer".to_owned()
        } else if self.has_reports(index) {
            let depth = depth(index);
            match depth {
                1 => format!("VP, {department}"),
                2 => format!("Director, {department}"),
                _ => format!("Manager, {department}"),
            }
        } else {
            format!("{}{}", LEVELS.choose(&mut rng).expect("levels"), ROLES.choose(&mut rng).expect("roles"))
        };
        let email = if revision == 0 {
            user_name.clone()
        } else {
            let (local, domain) = user_name.split_once('@').expect("userName has a domain");
            format!("{local}.r{revision}@{domain}")
        };
        UserSpec {
            index,
            style,
            display_name: format!("{given_name} {family_name}"),
            user_name,
            external_id,
            given_name,
            family_name,
            email,
            title,
            department,
            employee_number: format!("{:07}", 1_000_000 + index as u64),
            manager: self.manager_of(index),
        }
    }

    /// Memberships over all groups.
    pub fn total_memberships(&self) -> usize {
        self.groups.iter().map(|group| group.members.len()).sum()
    }
}

/// Depth of `index` in the manager tree (the CEO is 0).
fn depth(mut index: u32) -> u32 {
    let mut depth = 0;
    while index > 0 {
        index = (index - 1) / SPAN_OF_CONTROL;
        depth += 1;
    }
    depth
}

fn pick_style(idp: IdpMix, rng: &mut ChaCha8Rng) -> Style {
    // Drawn even when fixed, so the rest of the stream does not depend on the IdP choice.
    let okta = rng.random_bool(0.5);
    match idp {
        IdpMix::Entra => Style::Entra,
        IdpMix::Okta => Style::Okta,
        IdpMix::Mixed if okta => Style::Okta,
        IdpMix::Mixed => Style::Entra,
    }
}

/// Entra sends the Entra object id (a GUID); Okta its own 20-character user id (`00u...`).
fn external_id(style: Style, rng: &mut ChaCha8Rng) -> String {
    let bytes: [u8; 16] = rng.random();
    match style {
        Style::Entra => uuid::Builder::from_random_bytes(bytes).into_uuid().to_string(),
        Style::Okta => {
            const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
            let tail: String =
                (0..17).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
            format!("00u{tail}")
        }
    }
}

fn group_name(seed: u64, rank: usize, departments: &[String], rng: &mut ChaCha8Rng) -> String {
    // Rank is appended to every name but the first few so that names stay unique (Entra
    // matches groups by displayName and servers may enforce its uniqueness). The seed tag
    // keeps two seeds apart on one tenant, as the mail domain does for users: otherwise a
    // second seed would find and adopt the first one's "All Employees".
    let name = if rank == 0 {
        "All Employees".to_owned()
    } else if rank <= departments.len() {
        format!("Dept - {}", departments[rank - 1])
    } else {
        match rng.random_range(0..4) {
            0 => format!("App - {} Users {rank}", APPS.choose(rng).expect("apps")),
            1 => format!("Team - {} {rank}", TEAM_WORDS.choose(rng).expect("words")),
            2 => format!("DL - {} {rank}", TEAM_WORDS.choose(rng).expect("words")),
            _ => format!("SG-{}-{rank}", APPS.choose(rng).expect("apps").to_ascii_uppercase()),
        }
    };
    format!("{name} (s{seed})")
}

/// Group sizes by rank: exactly `largest_group` first, then a jittered Zipf law.
pub fn group_sizes(seed: u64, profile: &Profile) -> Vec<usize> {
    let mut rng = stream(seed, GROUP_SALT, u64::MAX);
    let largest = profile.largest_group.min(profile.users);
    (0..profile.groups)
        .map(|rank| {
            if rank == 0 {
                return largest;
            }
            let ideal = largest as f64 / ((rank + 1) as f64).powf(profile.zipf_exponent);
            let jitter = rng.random_range(0.85..1.15);
            ((ideal * jitter).round() as usize).clamp(1, largest.max(1))
        })
        .collect()
}

fn zipf_weights(count: usize, exponent: f64) -> Vec<f64> {
    (1..=count).map(|rank| 1.0 / (rank as f64).powf(exponent)).collect()
}

fn weighted_index(weights: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut target = rng.random_range(0.0..total);
    for (index, weight) in weights.iter().enumerate() {
        if target < *weight {
            return index;
        }
        target -= weight;
    }
    weights.len() - 1
}

/// The ASCII spelling of a name for userNames and mail addresses, lower-cased.
pub fn ascii_fold(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            let folded: &str = match c {
                'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => "a",
                'é' | 'è' | 'ê' | 'ë' => "e",
                'í' | 'ì' | 'î' | 'ï' | 'ı' => "i",
                'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => "o",
                'ú' | 'ù' | 'û' | 'ü' => "u",
                'ç' => "c",
                'ñ' => "n",
                'ł' | 'Ł' => "l",
                'ß' => "ss",
                'Ø' | 'Ö' => "o",
                'Å' | 'Ä' => "a",
                _ => "",
            };
            if folded.is_empty() { vec![c.to_ascii_lowercase()] } else { folded.chars().collect() }
        })
        .filter(|c| c.is_ascii_alphanumeric() || *c == '\'' || *c == '-')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smoke() -> Profile {
        Profile::smoke()
    }

    #[test]
    fn same_seed_gives_the_same_org_chart() {
        let a = OrgChart::generate(7, &smoke());
        let b = OrgChart::generate(7, &smoke());
        assert_eq!(a.groups, b.groups);
        for index in 0..a.users {
            assert_eq!(a.user(index, 0), b.user(index, 0));
            assert_eq!(a.user(index, 3), b.user(index, 3));
        }
        let c = OrgChart::generate(8, &smoke());
        assert_ne!(a.groups, c.groups, "another seed, another chart");
        assert_ne!(a.user(5, 0).user_name, c.user(5, 0).user_name);
    }

    #[test]
    fn a_known_seed_keeps_its_values_across_versions() {
        // Pinned so that a change of generator (or of the rand crates) that would silently
        // change what a published seed means is noticed.
        let chart = OrgChart::generate(42, &smoke());
        let user = chart.user(0, 0);
        assert_eq!(user.title, "Chief Executive Officer");
        assert_eq!(user.employee_number, "1000000");
        assert!(user.user_name.ends_with("0@s42.simulated.example"), "{}", user.user_name);
        assert_eq!(chart.groups[0].display_name, "All Employees (s42)");
        let again = OrgChart::generate(42, &smoke());
        assert_eq!(again.user(17, 0), chart.user(17, 0));
    }

    #[test]
    fn largest_group_has_the_configured_size_and_sizes_are_heavy_tailed() {
        for profile in [smoke(), Profile { users: 5_000, groups: 200, largest_group: 5_000, ..smoke() }] {
            let chart = OrgChart::generate(1, &profile);
            let mut sizes: Vec<usize> = chart.groups.iter().map(|g| g.members.len()).collect();
            assert_eq!(sizes[0], profile.largest_group, "group 0 has exactly the configured size");
            assert_eq!(*sizes.iter().max().unwrap(), profile.largest_group);
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            let median = sizes[sizes.len() / 2];
            assert!(sizes[0] >= 8 * median, "heavy tail: largest {} vs median {median}", sizes[0]);
            let total: usize = sizes.iter().sum();
            let top_tenth: usize = sizes[..sizes.len().div_ceil(10)].iter().sum();
            assert!(top_tenth * 10 >= total * 3, "top 10% of groups hold >= 30% of memberships");
            for group in &chart.groups {
                let mut members = group.members.clone();
                members.dedup();
                assert_eq!(members.len(), group.members.len(), "no duplicate members");
                assert!(members.iter().all(|m| *m < chart.users));
            }
        }
    }

    #[test]
    fn group_names_are_unique_and_carry_the_seed() {
        let chart = OrgChart::generate(12, &Profile { groups: 500, users: 1000, ..smoke() });
        let names: std::collections::HashSet<&str> =
            chart.groups.iter().map(|g| g.display_name.as_str()).collect();
        assert_eq!(names.len(), 500);
        assert!(chart.groups.iter().all(|g| g.display_name.ends_with(" (s12)")));
        assert_eq!(chart.groups[1].display_name, "Dept - Engineering (s12)");
    }

    #[test]
    fn a_million_member_group_is_exact() {
        let sizes = group_sizes(3, &Profile::large());
        assert_eq!(sizes[0], 1_000_000);
        assert!(sizes[1] < 600_000 && sizes[1] > 400_000);
        assert_eq!(sizes.len(), 2_000);
    }

    #[test]
    fn users_look_like_a_directory() {
        let chart = OrgChart::generate(11, &Profile { users: 1_000, ..smoke() });
        let mut names = std::collections::HashSet::new();
        for index in 0..chart.users {
            let user = chart.user(index, 0);
            assert!(names.insert(user.user_name.clone()), "unique userName");
            assert!(user.user_name.is_ascii());
            assert_eq!(user.email, user.user_name);
            assert_eq!(user.manager, chart.manager_of(index));
            assert_eq!(user.display_name, format!("{} {}", user.given_name, user.family_name));
            match user.style {
                Style::Entra => assert!(uuid::Uuid::parse_str(&user.external_id).is_ok()),
                Style::Okta => assert!(user.external_id.starts_with("00u") && user.external_id.len() == 20),
            }
        }
        assert_eq!(chart.manager_of(0), None);
        assert_eq!(chart.manager_of(1), Some(0));
        assert_eq!(chart.manager_of(9), Some(1));
        let updated = chart.user(5, 1);
        assert_eq!(updated.user_name, chart.user(5, 0).user_name, "identity survives revisions");
        assert_ne!(updated.email, chart.user(5, 0).email, "a revision changes the work email");
        assert!(chart.departments.iter().any(|d| d == "Engineering"));
    }

    #[test]
    fn mixed_idp_uses_both_styles() {
        let chart = OrgChart::generate(5, &smoke());
        let okta = (0..chart.users).filter(|i| chart.user(*i, 0).style == Style::Okta).count();
        assert!(okta > 50 && okta < 150, "{okta} of 200 users are Okta-driven");
        let fixed = OrgChart::generate(5, &Profile { idp: IdpMix::Entra, ..smoke() });
        assert!((0..fixed.users).all(|i| fixed.user(i, 0).style == Style::Entra));
        assert_eq!(fixed.user(3, 0).user_name, chart.user(3, 0).user_name, "IdP choice changes no attribute");
    }

    #[test]
    fn ascii_folding() {
        assert_eq!(ascii_fold("Søren"), "soren");
        assert_eq!(ascii_fold("Łukasz"), "lukasz");
        assert_eq!(ascii_fold("Yılmaz"), "yilmaz");
        assert_eq!(ascii_fold("O'Brien"), "o'brien");
    }
}
