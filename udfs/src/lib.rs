//! Seglake's marketing SQL functions for Apache DataFusion.
//!
//! | function | kind | file |
//! |---|---|---|
//! | `appetence_score` | aggregate (UDAF) | [`appetence_score`] |
//! | `rfm_segment` | scalar | [`rfm_segment`] |
//! | `normalize_email` | scalar | [`normalize_email`] |
//! | `normalize_phone` | scalar | [`normalize_phone`] |
//! | `stitch_identities` | table function | [`stitch_identities`] |
//! | `stitch_dropped_identifiers` | table function | [`stitch_dropped_identifiers`] |
//!
//! Not registered (built per statement by the engine, see
//! [`erased_profiles`]): `seglake_erased` and `seglake_refuse_erased`, the
//! erasure filter of the write paths.
//!
//! [`register_all`] is the single entry point used by the coordinator and the
//! workers alike; [`SeglakeCodec`] ships the functions and the custom
//! execution plan of identity stitching through `datafusion-proto`.

pub mod appetence_score;
pub mod codec;
pub mod docs;
pub mod erased_profiles;
mod error;
pub mod identity_graph;
pub mod normalize_email;
pub mod normalize_phone;
pub mod rfm_segment;
pub mod stitch_dropped_identifiers;
pub mod stitch_identities;
mod strings;

use std::sync::Arc;

use datafusion::catalog::TableFunctionImpl;
use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{AggregateUDF, Documentation, ScalarUDF};

pub use codec::SeglakeCodec;
pub use error::UdfError;

/// Our scalar functions (fresh instances).
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    vec![
        rfm_segment::rfm_segment_udf(),
        normalize_email::normalize_email_udf(),
        normalize_phone::normalize_phone_udf(),
    ]
}

/// Our aggregate functions (fresh instances).
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    vec![appetence_score::appetence_score_udaf()]
}

/// Our table functions, as `(name, implementation)`.
pub fn table_functions() -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
    vec![
        (
            stitch_identities::NAME,
            Arc::new(stitch_identities::StitchIdentitiesFunc::new()),
        ),
        (
            stitch_dropped_identifiers::NAME,
            Arc::new(stitch_dropped_identifiers::StitchDroppedIdentifiersFunc::new()),
        ),
    ]
}

/// Registers every Seglake function into `state`, next to what it already has.
///
/// Functions are appended: DataFusion's built-ins (and anything registered
/// before) stay. Registering twice is harmless (our functions replace
/// themselves), but a name already taken by a *different* function is an
/// error, so a Seglake function can never shadow a built-in.
pub fn register_all(state: &mut SessionState) -> Result<()> {
    for udf in scalar_functions() {
        for name in std::iter::once(udf.name()).chain(udf.aliases().iter().map(String::as_str)) {
            if let Some(existing) = state.scalar_functions().get(name)
                && existing.as_ref() != udf.as_ref()
            {
                return Err(UdfError::NameTaken(name.to_string()).into());
            }
        }
        state.register_udf(udf)?;
    }
    for udaf in aggregate_functions() {
        for name in std::iter::once(udaf.name()).chain(udaf.aliases().iter().map(String::as_str)) {
            if let Some(existing) = state.aggregate_functions().get(name)
                && existing.as_ref() != udaf.as_ref()
            {
                return Err(UdfError::NameTaken(name.to_string()).into());
            }
        }
        state.register_udaf(udaf)?;
    }
    for (name, fun) in table_functions() {
        if let Some(existing) = state.table_functions().get(name) {
            let ours = existing.function().as_ref() as &dyn std::any::Any;
            if !(ours.is::<stitch_identities::StitchIdentitiesFunc>()
                || ours.is::<stitch_dropped_identifiers::StitchDroppedIdentifiersFunc>())
            {
                return Err(UdfError::NameTaken(name.to_string()).into());
            }
        }
        state.register_udtf(name, fun);
    }
    Ok(())
}

/// Kind of a Seglake function, used by the documentation generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    Scalar,
    Aggregate,
    Table,
}

impl FunctionKind {
    pub fn label(self) -> &'static str {
        match self {
            FunctionKind::Scalar => "scalar function",
            FunctionKind::Aggregate => "aggregate function",
            FunctionKind::Table => "table function",
        }
    }
}

/// Documentation of one function.
#[derive(Debug, Clone)]
pub struct FunctionDoc {
    pub name: String,
    pub kind: FunctionKind,
    pub doc: Documentation,
}

/// The documentation of every Seglake function, in a stable order
/// (aggregate, scalar, table functions; by name inside each kind).
pub fn all_functions_docs() -> Vec<FunctionDoc> {
    let mut docs = Vec::new();
    for udaf in aggregate_functions() {
        if let Some(doc) = udaf.documentation() {
            docs.push(FunctionDoc {
                name: udaf.name().to_string(),
                kind: FunctionKind::Aggregate,
                doc: doc.clone(),
            });
        }
    }
    for udf in scalar_functions() {
        if let Some(doc) = udf.documentation() {
            docs.push(FunctionDoc {
                name: udf.name().to_string(),
                kind: FunctionKind::Scalar,
                doc: doc.clone(),
            });
        }
    }
    docs.push(FunctionDoc {
        name: stitch_identities::NAME.to_string(),
        kind: FunctionKind::Table,
        doc: stitch_identities::documentation().clone(),
    });
    docs.push(FunctionDoc {
        name: stitch_dropped_identifiers::NAME.to_string(),
        kind: FunctionKind::Table,
        doc: stitch_dropped_identifiers::documentation().clone(),
    });
    docs.sort_by(|a, b| (a.kind as u8, a.name.as_str()).cmp(&(b.kind as u8, b.name.as_str())));
    docs
}

/// Names of every Seglake function (scalar, aggregate and table functions).
pub fn all_function_names() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for udf in scalar_functions() {
        names.push(udf.name().to_string());
        names.extend(udf.aliases().iter().cloned());
    }
    for udaf in aggregate_functions() {
        names.push(udaf.name().to_string());
        names.extend(udaf.aliases().iter().cloned());
    }
    names.extend(table_functions().into_iter().map(|(n, _)| n.to_string()));
    names
}

#[cfg(test)]
pub(crate) mod test_util {
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// A context with DataFusion's defaults plus our functions.
    pub fn ctx() -> SessionContext {
        ctx_with_config(SessionConfig::new())
    }

    pub fn ctx_with_config(config: SessionConfig) -> SessionContext {
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build();
        super::register_all(&mut state).expect("register_all");
        SessionContext::new_with_state(state)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use datafusion::execution::session_state::SessionStateBuilder;

    use super::*;

    #[test]
    fn names_are_unique_and_do_not_collide_with_builtins() {
        let names = all_function_names();
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "duplicate function name in {names:?}"
        );

        let state = SessionStateBuilder::new().with_default_features().build();
        for name in &names {
            assert!(
                !state.scalar_functions().contains_key(name)
                    && !state.aggregate_functions().contains_key(name)
                    && !state.window_functions().contains_key(name)
                    && !state.table_functions().contains_key(name),
                "{name} collides with a DataFusion built-in"
            );
        }
    }

    #[test]
    fn register_all_appends_and_is_idempotent() {
        let mut state = SessionStateBuilder::new().with_default_features().build();
        let before = state.scalar_functions().len();
        let before_agg = state.aggregate_functions().len();
        let before_tf = state.table_functions().len();
        register_all(&mut state).unwrap();
        register_all(&mut state).unwrap();
        assert_eq!(
            state.scalar_functions().len(),
            before + scalar_functions().len()
        );
        assert_eq!(
            state.aggregate_functions().len(),
            before_agg + aggregate_functions().len()
        );
        assert_eq!(
            state.table_functions().len(),
            before_tf + table_functions().len()
        );
        // built-ins are still there
        assert!(state.scalar_functions().contains_key("lower"));
        assert!(state.aggregate_functions().contains_key("sum"));
        assert!(state.table_functions().contains_key("generate_series"));
    }

    #[test]
    fn register_all_refuses_to_shadow_another_function() {
        let mut state = SessionStateBuilder::new().with_default_features().build();
        let lower = state
            .scalar_functions()
            .get("lower")
            .unwrap()
            .as_ref()
            .clone();
        let impostor = lower.with_aliases(["normalize_email"]);
        state.register_udf(Arc::new(impostor)).unwrap();
        let err = register_all(&mut state).unwrap_err();
        assert!(err.to_string().contains("normalize_email"), "{err}");
    }

    #[test]
    fn every_function_is_documented() {
        let docs = all_functions_docs();
        assert_eq!(docs.len(), all_function_names().len());
        for d in &docs {
            assert!(!d.doc.description.is_empty(), "{}", d.name);
            assert!(d.doc.syntax_example.starts_with(&d.name), "{}", d.name);
            assert!(d.doc.sql_example.is_some(), "{} has no SQL example", d.name);
            assert!(d.doc.arguments.is_some(), "{} has no argument docs", d.name);
        }
    }
}
