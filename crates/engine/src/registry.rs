//! The registry: every module and app weft knows, merged from each crate's explicit list.
//!
//! Validation, `weft modules` and the generated docs all read it. Sonar modules plug in by
//! passing their list to [`Registry::new`]; the engine needs no change for them.

use std::collections::BTreeMap;

use crate::module::{App, Module};

/// Two lists registered the same id.
#[derive(Debug, thiserror::Error)]
#[error("{what} `{id}` is registered twice")]
pub struct DuplicateId {
    /// "module" or "app".
    pub what: &'static str,
    /// The duplicated id.
    pub id: String,
}

/// Every known module by id and every known app by name.
pub struct Registry {
    modules: BTreeMap<&'static str, &'static dyn Module>,
    apps: BTreeMap<&'static str, &'static dyn App>,
}

impl Registry {
    /// Merges module lists and app lists; a duplicate id is an error.
    pub fn new<M, A>(module_lists: M, app_lists: A) -> Result<Self, DuplicateId>
    where
        M: IntoIterator<Item = &'static [&'static dyn Module]>,
        A: IntoIterator<Item = &'static [&'static dyn App]>,
    {
        let mut modules = BTreeMap::new();
        for list in module_lists {
            for m in list {
                let id = m.spec().id;
                if modules.insert(id, *m).is_some() {
                    return Err(DuplicateId {
                        what: "module",
                        id: id.to_owned(),
                    });
                }
            }
        }
        let mut apps = BTreeMap::new();
        for list in app_lists {
            for a in list {
                if apps.insert(a.name(), *a).is_some() {
                    return Err(DuplicateId {
                        what: "app",
                        id: a.name().to_owned(),
                    });
                }
            }
        }
        Ok(Registry { modules, apps })
    }

    /// The module with this id.
    pub fn module(&self, id: &str) -> Option<&'static dyn Module> {
        self.modules.get(id).copied()
    }

    /// The app with this name.
    pub fn app(&self, name: &str) -> Option<&'static dyn App> {
        self.apps.get(name).copied()
    }

    /// All modules, sorted by id.
    pub fn modules(&self) -> impl Iterator<Item = &'static dyn Module> + '_ {
        self.modules.values().copied()
    }

    /// All apps, sorted by name.
    pub fn apps(&self) -> impl Iterator<Item = &'static dyn App> + '_ {
        self.apps.values().copied()
    }

    /// The known module id closest to `id`, for "did you mean" hints.
    pub fn suggest_module(&self, id: &str) -> Option<&'static str> {
        crate::suggest::did_you_mean(id, self.modules.keys().copied())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn suggests_close_module_names_only() {
        let r = Registry::new([crate::builtin::modules()], []).unwrap();
        assert_eq!(r.suggest_module("flow.ruter"), Some("flow.router"));
        assert_eq!(
            r.suggest_module("flow.set_variable"),
            Some("flow.set_variables")
        );
        assert_eq!(r.suggest_module("totally.different"), None);
    }
}
