//! The expected state of the server: what the simulator's acknowledged writes must have left.
//!
//! The model changes only when the server acknowledged a write with 2xx, so whatever happens
//! (errors, timeouts, a time budget cut short) it always describes what a correct server holds.
//! Users are stored as a few fields (server id, active flag, revision, manager); their
//! attributes are recomputed from the [`OrgChart`] when needed, which keeps a million-user
//! model small.

use crate::orgchart::{OrgChart, UserSpec};
use rand::Rng;
use std::collections::HashMap;

/// A set of user indices with O(1) insert, remove, membership test and uniform random pick.
/// Churn removes random members of groups of any size; a hash set alone cannot pick one
/// without walking it.
#[derive(Debug, Clone, Default)]
pub struct IndexedSet {
    items: Vec<u32>,
    positions: HashMap<u32, usize>,
}

impl IndexedSet {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn contains(&self, item: u32) -> bool {
        self.positions.contains_key(&item)
    }

    /// Adds `item`; false if it was present.
    pub fn insert(&mut self, item: u32) -> bool {
        if self.positions.contains_key(&item) {
            return false;
        }
        self.positions.insert(item, self.items.len());
        self.items.push(item);
        true
    }

    /// Removes `item`; false if it was absent.
    pub fn remove(&mut self, item: u32) -> bool {
        let Some(position) = self.positions.remove(&item) else { return false };
        self.items.swap_remove(position);
        if let Some(moved) = self.items.get(position) {
            self.positions.insert(*moved, position);
        }
        true
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.positions.clear();
    }

    pub fn pick<R: Rng>(&self, rng: &mut R) -> Option<u32> {
        (!self.items.is_empty()).then(|| self.items[rng.random_range(0..self.items.len())])
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.items.iter().copied()
    }
}

/// What the server holds for one user, as far as acknowledged writes tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserState {
    /// Server id; `None` until a create (or an adoption) was acknowledged.
    pub id: Option<String>,
    pub active: bool,
    /// Attribute revision in the org chart ([`OrgChart::user`]).
    pub revision: u32,
    /// The manager (user index) the server was told; `None` when never set or removed.
    pub manager: Option<u32>,
}

/// What the server holds for one group.
#[derive(Debug, Clone, Default)]
pub struct GroupState {
    pub id: Option<String>,
    pub display_name: String,
    pub members: IndexedSet,
    /// Renames so far, to make the next name unique.
    pub renames: u32,
}

/// The expected attributes of one user, as compared by verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedUser {
    pub index: u32,
    pub id: String,
    pub user_name: String,
    pub external_id: String,
    pub active: bool,
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    pub title: String,
    pub email: String,
    pub department: String,
    pub employee_number: String,
    pub manager_id: Option<String>,
}

/// The whole expected state.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub users: Vec<UserState>,
    pub groups: Vec<GroupState>,
}

impl Model {
    /// Nothing provisioned yet.
    pub fn new(chart: &OrgChart) -> Self {
        Model {
            users: vec![UserState::default(); chart.users as usize],
            groups: chart
                .groups
                .iter()
                .map(|group| GroupState { display_name: group.display_name.clone(), ..GroupState::default() })
                .collect(),
        }
    }

    pub fn user_id(&self, index: u32) -> Option<&str> {
        self.users.get(index as usize)?.id.as_deref()
    }

    /// What verification expects of user `index`; `None` if it was never provisioned.
    pub fn expected_user(&self, chart: &OrgChart, index: u32) -> Option<ExpectedUser> {
        let state = self.users.get(index as usize)?;
        let id = state.id.clone()?;
        let spec: UserSpec = chart.user(index, state.revision);
        Some(ExpectedUser {
            index,
            id,
            user_name: spec.user_name,
            external_id: spec.external_id,
            active: state.active,
            display_name: spec.display_name,
            given_name: spec.given_name,
            family_name: spec.family_name,
            title: spec.title,
            email: spec.email,
            department: spec.department,
            employee_number: spec.employee_number,
            manager_id: state.manager.and_then(|manager| self.user_id(manager).map(str::to_owned)),
        })
    }

    pub fn provisioned_users(&self) -> usize {
        self.users.iter().filter(|user| user.id.is_some()).count()
    }

    pub fn memberships(&self) -> usize {
        self.groups.iter().map(|group| group.members.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use rand::SeedableRng;

    #[test]
    fn indexed_set_behaves_like_a_set() {
        let mut set = IndexedSet::default();
        assert!(set.insert(1) && set.insert(2) && set.insert(3));
        assert!(!set.insert(2));
        assert!(set.remove(1));
        assert!(!set.remove(1));
        assert!(set.contains(3) && set.contains(2) && !set.contains(1));
        assert_eq!(set.len(), 2);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20 {
            let picked = set.pick(&mut rng).unwrap();
            assert!(picked == 2 || picked == 3);
        }
        let mut items: Vec<u32> = set.iter().collect();
        items.sort();
        assert_eq!(items, vec![2, 3]);
        set.clear();
        assert!(set.is_empty() && set.pick(&mut rng).is_none());
    }

    #[test]
    fn expected_users_follow_revisions_and_managers() {
        let chart = OrgChart::generate(2, &Profile::smoke());
        let mut model = Model::new(&chart);
        assert!(model.expected_user(&chart, 9).is_none(), "not provisioned");
        model.users[1].id = Some("m".into());
        model.users[9] = UserState { id: Some("u9".into()), active: true, revision: 2, manager: Some(1) };
        let expected = model.expected_user(&chart, 9).unwrap();
        assert_eq!(expected.manager_id.as_deref(), Some("m"));
        assert_eq!(expected.title, chart.user(9, 2).title);
        model.groups[0].id = Some("g".into());
        model.groups[0].members.insert(9);
        assert_eq!(model.memberships(), 1);
        assert_eq!(model.provisioned_users(), 2);
    }
}
