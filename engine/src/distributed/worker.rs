//! The worker side: the session every plan fragment runs in, and what a
//! worker refuses to run whoever sends it.
//!
//! A fragment reaches the plan rewrite handler decoded, before anything of
//! it runs. There a worker refuses any node that writes (a fragment of a
//! query only reads; Seglake's writes run on the coordinator, through its
//! own write paths) and any file it would scan outside the warehouse and
//! the `--allow-location` prefixes; only then does it register the object
//! stores the scans need. The caller's identity (the cluster secret) is
//! checked before this, by the service (see [`super::auth`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_distributed::{
    DistributedExt, Worker, WorkerPlanRewriteEvent, WorkerPlanRewriteEventResponse,
    WorkerQueryContext,
};

use super::auth::ClusterSecret;
use super::{Channels, ClusterTls, SeglakeChannels, WORKER_VERSION, codec};
use crate::EngineError;
use crate::storage::Storage;

/// The rule a refused fragment names (`docs/server.md`, "Distributed
/// workers").
pub(crate) use crate::storage::confined::WORKER_READ_ONLY as WRITE_RULE;

/// The worker service of `seglake worker` (`Engine::worker`): plan
/// fragments run with the storage's runtime (object stores, memory pool),
/// DataFusion's functions plus Seglake's, and Seglake's codec. `secret`
/// signs the worker's own calls to other workers (shuffles), `tls` says
/// how `https://` workers are verified on them.
pub(crate) fn worker(
    storage: Arc<Storage>,
    secret: Option<ClusterSecret>,
    tls: ClusterTls,
) -> crate::Result<Worker> {
    let channels = SeglakeChannels {
        channels: Arc::new(Channels::new(Duration::from_secs(5), secret).with_tls(tls)),
        cluster: None,
    };
    let runtime = storage.worker_runtime()?;
    Ok(
        Worker::from_session_builder(move |ctx: WorkerQueryContext| {
            let storage = Arc::clone(&storage);
            let channels = channels.clone();
            async move {
                let mut state = ctx
                    .builder
                    .with_distributed_user_codec(codec())
                    .with_distributed_channel_resolver(channels)
                    .with_distributed_worker_plan_rewrite_handler(
                        move |ev: WorkerPlanRewriteEvent<'_>| {
                            refuse_writes(&ev.plan)?;
                            register_scan_stores(&storage, &ev.plan)?;
                            Ok(WorkerPlanRewriteEventResponse::new(ev.plan))
                        },
                    )
                    .build();
                // Appends to DataFusion's functions (never replaces them).
                seglake_udfs::register_all(&mut state)?;
                Ok(state)
            }
        })
        .with_runtime_env(runtime)
        .with_version(WORKER_VERSION),
    )
}

fn external(e: EngineError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Refuses a fragment holding a node that writes. The nodes a fragment can
/// be decoded into that write are `DataSinkExec`s (Parquet, CSV and JSON
/// sinks are all one); Seglake's own nodes only read.
pub(crate) fn refuse_writes(plan: &Arc<dyn ExecutionPlan>) -> DfResult<()> {
    plan.apply(|node| {
        if node.downcast_ref::<DataSinkExec>().is_some() {
            return Err(external(EngineError::denied(
                WRITE_RULE,
                format!(
                    "a worker runs plan fragments that only read: {} refused",
                    node.name()
                ),
            )));
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(())
}

/// Checks every file the fragment's scans read against the warehouse and
/// the allowed locations, then registers the object stores they need
/// (tables outside the warehouse store: other buckets, local files).
/// Files are checked by folder: a folder is normalised (symlinks resolved)
/// once, however many files of it a scan reads.
fn register_scan_stores(storage: &Storage, plan: &Arc<dyn ExecutionPlan>) -> DfResult<()> {
    let mut stores = BTreeSet::new();
    let mut folders = BTreeSet::new();
    plan.apply(|node| {
        if let Some(source) = node.downcast_ref::<DataSourceExec>()
            && let Some(scan) = source.data_source().downcast_ref::<FileScanConfig>()
        {
            // `file:///` or `s3://bucket/`: object paths are relative to it.
            let store = scan.object_store_url.as_str();
            stores.insert(store.to_string());
            for file in scan.file_groups.iter().flat_map(|g| g.iter()) {
                let path = file.object_meta.location.as_ref();
                let folder = path.rsplit_once('/').map_or("", |(folder, _)| folder);
                folders.insert(format!("{store}{folder}"));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    for folder in &folders {
        storage.check_location(folder).map_err(external)?;
    }
    for store in &stores {
        storage.ensure_object_store(store).map_err(external)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::file_format::parquet::ParquetSink;
    use datafusion::datasource::listing::ListingTableUrl;
    use datafusion::datasource::physical_plan::FileSinkConfig;
    use datafusion::execution::object_store::ObjectStoreUrl;
    use datafusion::logical_expr::dml::InsertOp;
    use datafusion::physical_plan::empty::EmptyExec;
    use datafusion::physical_plan::projection::ProjectionExec;

    fn sink_plan() -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let config = FileSinkConfig {
            original_url: "file:///tmp/seglake-never-written/".into(),
            object_store_url: ObjectStoreUrl::local_filesystem(),
            file_group: Default::default(),
            table_paths: vec![
                ListingTableUrl::parse("file:///tmp/seglake-never-written/").unwrap(),
            ],
            output_schema: Arc::clone(&schema),
            table_partition_cols: vec![],
            insert_op: InsertOp::Append,
            keep_partition_by_columns: false,
            file_extension: "parquet".into(),
            file_output_mode: Default::default(),
        };
        let sink = Arc::new(ParquetSink::new(config, Default::default()));
        let input: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(Arc::clone(&schema)));
        Arc::new(DataSinkExec::new(input, sink, None))
    }

    #[test]
    fn a_fragment_with_a_sink_is_refused_anywhere_in_it() {
        let sink = sink_plan();
        let err = refuse_writes(&sink).unwrap_err().to_string();
        assert!(err.contains(WRITE_RULE), "{err}");
        assert!(err.contains("DataSinkExec"), "{err}");
        // Below another node.
        let above: Arc<dyn ExecutionPlan> = Arc::new(
            ProjectionExec::try_new(
                vec![(
                    Arc::new(datafusion::physical_expr::expressions::Column::new(
                        "count", 0,
                    )) as _,
                    "count".to_string(),
                )],
                sink,
            )
            .unwrap(),
        );
        assert!(refuse_writes(&above).is_err());
        let read: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(Arc::new(Schema::empty())));
        assert!(refuse_writes(&read).is_ok());
    }
}
