//! Folding commands in log order: decide, then apply each change to an [`Overlay`], so a batch
//! of commands turns into one ordered list of row mutations for a single store write.

use crate::apply::apply;
use crate::command::Command;
use crate::decide::{Decision, decide};
use crate::overlay::Overlay;
use crate::schema::SchemaRegistry;
use crate::state::{Mutation, StateView};

/// Folds a batch of one tenant's commands against `base`.
pub struct BatchFold<'a, V: StateView + ?Sized> {
    registry: &'a SchemaRegistry,
    overlay: Overlay<'a, V>,
}

impl<'a, V: StateView + ?Sized> BatchFold<'a, V> {
    pub fn new(registry: &'a SchemaRegistry, base: &'a V) -> Self {
        BatchFold { registry, overlay: Overlay::new(base) }
    }

    /// Decides `command` against the state so far and, if accepted, applies its changes.
    pub fn fold(&mut self, command: &Command) -> Decision {
        let decision = decide(self.registry, &self.overlay, command);
        if let Ok(accepted) = &decision {
            for change in &accepted.changes {
                for mutation in apply(&self.overlay, change) {
                    self.overlay.push(mutation);
                }
            }
        }
        decision
    }

    /// The view including everything folded so far.
    pub fn view(&self) -> &Overlay<'a, V> {
        &self.overlay
    }

    pub fn into_mutations(self) -> Vec<Mutation> {
        self.overlay.into_pending()
    }
}
