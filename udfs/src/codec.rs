//! [`SeglakeCodec`]: the datafusion-proto extension codec that ships Seglake's
//! functions and execution plans to distributed workers.
//!
//! * Scalar and aggregate functions have no state: they are encoded **by
//!   name** (an empty payload). The decoding side looks the name up in its
//!   function registry (a worker that called [`crate::register_all`]) and, if
//!   absent there, this codec builds the function itself.
//! * [`StitchIdentitiesExec`] is encoded as a small payload (output mode and
//!   `max_records_per_identifier`); its child plan travels as the node's
//!   input, through datafusion-proto itself.
//! * As a [`LogicalExtensionCodec`], the table provider of the stitching table
//!   functions ([`StitchTable`]) is encoded with its source and parameters.
//!
//! # Composing with another codec
//!
//! Use [`SeglakeCodec::with_fallback`] (and
//! [`SeglakeCodec::with_logical_fallback`]): whatever is not Seglake's is
//! delegated to the fallback codec, for encoding and decoding alike.
//! Prefer this over datafusion-proto's `ComposedPhysicalExtensionCodec`: that
//! one picks the first codec whose `try_encode_udf` succeeds, and the default
//! `try_encode_udf` of every codec succeeds, so by-name functions of one codec
//! end up decoded by another.
//!
//! ```
//! use std::sync::Arc;
//! use datafusion_proto::physical_plan::DefaultPhysicalExtensionCodec;
//! use seglake_udfs::SeglakeCodec;
//!
//! let codec = SeglakeCodec::new().with_fallback(Arc::new(DefaultPhysicalExtensionCodec {}));
//! # let _ = codec;
//! ```

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{TableReference, not_impl_err};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{
    AggregateUDF, Extension, HigherOrderUDF, LogicalPlan, ScalarUDF, WindowUDF,
};
use datafusion::physical_expr_common::physical_expr::proto_decode::PhysicalExprDecodeCtx;
use datafusion::physical_expr_common::physical_expr::proto_encode::PhysicalExprEncodeCtx;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use prost::Message;

use crate::UdfError;
use crate::erased_profiles::{ErasedFunction, as_erased_function};
use crate::stitch_identities::{StitchIdentitiesExec, StitchMode, StitchTable};

/// Prefix of the payload of a [`StitchIdentitiesExec`] (version 1).
const STITCH_EXEC_MAGIC: &[u8] = b"SGLK\x01exec:stitch";
/// Prefix of the payload of a [`StitchTable`] (version 1).
const STITCH_TABLE_MAGIC: &[u8] = b"SGLK\x01table:stitch";

#[derive(Clone, PartialEq, Message)]
struct StitchExecProto {
    #[prost(uint32, tag = "1")]
    mode: u32,
    #[prost(uint64, tag = "2")]
    max_records_per_identifier: u64,
}

#[derive(Clone, PartialEq, Message)]
struct StitchTableProto {
    #[prost(string, tag = "1")]
    source: String,
    #[prost(uint32, tag = "2")]
    mode: u32,
    #[prost(uint64, tag = "3")]
    max_records_per_identifier: u64,
}

fn mode_to_u32(mode: StitchMode) -> u32 {
    match mode {
        StitchMode::Persons => 1,
        StitchMode::DroppedIdentifiers => 2,
    }
}

fn mode_from_u32(mode: u32) -> Result<StitchMode> {
    match mode {
        1 => Ok(StitchMode::Persons),
        2 => Ok(StitchMode::DroppedIdentifiers),
        other => Err(UdfError::InvalidPayload(format!("unknown stitch mode {other}")).into()),
    }
}

fn decode_message<M: Message + Default>(buf: &[u8]) -> Result<M> {
    M::decode(buf).map_err(|e| UdfError::InvalidPayload(e.to_string()).into())
}

/// Seglake's function, by name, when `udf` is one of ours.
fn our_udf(name: &str) -> Option<Arc<ScalarUDF>> {
    crate::scalar_functions()
        .into_iter()
        .find(|f| f.name() == name || f.aliases().iter().any(|a| a == name))
}

fn our_udaf(name: &str) -> Option<Arc<AggregateUDF>> {
    crate::aggregate_functions()
        .into_iter()
        .find(|f| f.name() == name || f.aliases().iter().any(|a| a == name))
}

fn is_our_udf(udf: &ScalarUDF) -> bool {
    our_udf(udf.name()).is_some_and(|ours| ours.as_ref() == udf)
}

fn is_our_udaf(udaf: &AggregateUDF) -> bool {
    our_udaf(udaf.name()).is_some_and(|ours| ours.as_ref() == udaf)
}

/// The extension codec of Seglake (physical and logical plans).
#[derive(Debug, Clone, Default)]
pub struct SeglakeCodec {
    fallback: Option<Arc<dyn PhysicalExtensionCodec>>,
    logical_fallback: Option<Arc<dyn LogicalExtensionCodec>>,
}

impl SeglakeCodec {
    /// A codec for Seglake's functions and plans only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Delegates every physical node, expression or function that is not
    /// Seglake's to `fallback`.
    pub fn with_fallback(mut self, fallback: Arc<dyn PhysicalExtensionCodec>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Delegates every logical extension, table provider or function that is
    /// not Seglake's to `fallback`.
    pub fn with_logical_fallback(mut self, fallback: Arc<dyn LogicalExtensionCodec>) -> Self {
        self.logical_fallback = Some(fallback);
        self
    }

    /// Encodes a [`StitchIdentitiesExec`]'s own parameters.
    fn encode_stitch_exec(exec: &StitchIdentitiesExec, buf: &mut Vec<u8>) {
        buf.extend_from_slice(STITCH_EXEC_MAGIC);
        StitchExecProto {
            mode: mode_to_u32(exec.mode()),
            max_records_per_identifier: exec.max_records_per_identifier(),
        }
        .encode(buf)
        .expect("a Vec<u8> grows as needed");
    }

    fn decode_stitch_exec(
        payload: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let proto: StitchExecProto = decode_message(payload)?;
        let [input] = inputs else {
            return Err(UdfError::InvalidPayload(format!(
                "StitchIdentitiesExec expects 1 input, got {}",
                inputs.len()
            ))
            .into());
        };
        Ok(Arc::new(StitchIdentitiesExec::try_new(
            Arc::clone(input),
            mode_from_u32(proto.mode)?,
            proto.max_records_per_identifier,
        )?))
    }
}

impl PhysicalExtensionCodec for SeglakeCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(payload) = buf.strip_prefix(STITCH_EXEC_MAGIC) {
            return Self::decode_stitch_exec(payload, inputs);
        }
        match &self.fallback {
            Some(f) => f.try_decode(buf, inputs, ctx, proto_converter),
            None => not_impl_err!("SeglakeCodec cannot decode this execution plan"),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(exec) = node.downcast_ref::<StitchIdentitiesExec>() {
            Self::encode_stitch_exec(exec, buf);
            return Ok(());
        }
        match &self.fallback {
            Some(f) => f.try_encode(node, buf, proto_converter),
            None => not_impl_err!("SeglakeCodec cannot encode {}", node.name()),
        }
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        if buf.is_empty()
            && let Some(udf) = our_udf(name)
        {
            return Ok(udf);
        }
        if let Some(udf) = ErasedFunction::decode(name, buf)? {
            return Ok(Arc::new(udf));
        }
        match &self.fallback {
            Some(f) => f.try_decode_udf(name, buf),
            None => not_impl_err!("SeglakeCodec does not know scalar function {name}"),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if is_our_udf(node) {
            return Ok(()); // by name
        }
        if let Some(f) = as_erased_function(node) {
            f.encode(buf);
            return Ok(());
        }
        match &self.fallback {
            Some(f) => f.try_encode_udf(node, buf),
            None => Ok(()),
        }
    }

    fn try_decode_higher_order_function(
        &self,
        name: &str,
        buf: &[u8],
    ) -> Result<Arc<HigherOrderUDF>> {
        match &self.fallback {
            Some(f) => f.try_decode_higher_order_function(name, buf),
            None => not_impl_err!("SeglakeCodec does not know higher order function {name}"),
        }
    }

    fn try_encode_higher_order_function(
        &self,
        node: &HigherOrderUDF,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        match &self.fallback {
            Some(f) => f.try_encode_higher_order_function(node, buf),
            None => Ok(()),
        }
    }

    fn try_decode_expr(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn PhysicalExpr>],
        ctx: &PhysicalExprDecodeCtx<'_>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        match &self.fallback {
            Some(f) => f.try_decode_expr(buf, inputs, ctx),
            None => not_impl_err!("SeglakeCodec cannot decode physical expressions"),
        }
    }

    fn try_encode_expr(
        &self,
        node: &Arc<dyn PhysicalExpr>,
        buf: &mut Vec<u8>,
        ctx: &PhysicalExprEncodeCtx<'_>,
    ) -> Result<()> {
        match &self.fallback {
            Some(f) => f.try_encode_expr(node, buf, ctx),
            None => not_impl_err!("SeglakeCodec cannot encode physical expression {node}"),
        }
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        if buf.is_empty()
            && let Some(udaf) = our_udaf(name)
        {
            return Ok(udaf);
        }
        match &self.fallback {
            Some(f) => f.try_decode_udaf(name, buf),
            None => not_impl_err!("SeglakeCodec does not know aggregate function {name}"),
        }
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        if is_our_udaf(node) {
            return Ok(()); // by name
        }
        match &self.fallback {
            Some(f) => f.try_encode_udaf(node, buf),
            None => Ok(()),
        }
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        match &self.fallback {
            Some(f) => f.try_decode_udwf(name, buf),
            None => not_impl_err!("SeglakeCodec does not know window function {name}"),
        }
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        match &self.fallback {
            Some(f) => f.try_encode_udwf(node, buf),
            None => Ok(()),
        }
    }
}

impl LogicalExtensionCodec for SeglakeCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        match &self.logical_fallback {
            Some(f) => f.try_decode(buf, inputs, ctx),
            None => not_impl_err!("SeglakeCodec has no logical extension nodes"),
        }
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        match &self.logical_fallback {
            Some(f) => f.try_encode(node, buf),
            None => not_impl_err!("SeglakeCodec has no logical extension nodes"),
        }
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        if let Some(payload) = buf.strip_prefix(STITCH_TABLE_MAGIC) {
            let proto: StitchTableProto = decode_message(payload)?;
            return Ok(Arc::new(StitchTable::new(
                proto.source,
                proto.max_records_per_identifier,
                mode_from_u32(proto.mode)?,
            )));
        }
        match &self.logical_fallback {
            Some(f) => f.try_decode_table_provider(buf, table_ref, schema, ctx),
            None => not_impl_err!("SeglakeCodec cannot decode table provider {table_ref}"),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(table) = node.downcast_ref::<StitchTable>() {
            buf.extend_from_slice(STITCH_TABLE_MAGIC);
            StitchTableProto {
                source: table.source().to_string(),
                mode: mode_to_u32(table.mode()),
                max_records_per_identifier: table.max_records_per_identifier(),
            }
            .encode(buf)
            .expect("a Vec<u8> grows as needed");
            return Ok(());
        }
        match &self.logical_fallback {
            Some(f) => f.try_encode_table_provider(table_ref, node, buf),
            None => not_impl_err!("SeglakeCodec cannot encode table provider {table_ref}"),
        }
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        if buf.is_empty()
            && let Some(udf) = our_udf(name)
        {
            return Ok(udf);
        }
        if let Some(udf) = ErasedFunction::decode(name, buf)? {
            return Ok(Arc::new(udf));
        }
        match &self.logical_fallback {
            Some(f) => f.try_decode_udf(name, buf),
            None => not_impl_err!("SeglakeCodec does not know scalar function {name}"),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if is_our_udf(node) {
            return Ok(());
        }
        if let Some(f) = as_erased_function(node) {
            f.encode(buf);
            return Ok(());
        }
        match &self.logical_fallback {
            Some(f) => f.try_encode_udf(node, buf),
            None => Ok(()),
        }
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        if buf.is_empty()
            && let Some(udaf) = our_udaf(name)
        {
            return Ok(udaf);
        }
        match &self.logical_fallback {
            Some(f) => f.try_decode_udaf(name, buf),
            None => not_impl_err!("SeglakeCodec does not know aggregate function {name}"),
        }
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        if is_our_udaf(node) {
            return Ok(());
        }
        match &self.logical_fallback {
            Some(f) => f.try_encode_udaf(node, buf),
            None => Ok(()),
        }
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        match &self.logical_fallback {
            Some(f) => f.try_decode_udwf(name, buf),
            None => not_impl_err!("SeglakeCodec does not know window function {name}"),
        }
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        match &self.logical_fallback {
            Some(f) => f.try_encode_udwf(node, buf),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::RecordBatch;
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};
    use datafusion_proto::bytes::{
        logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec,
        physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
    };
    use datafusion_proto::physical_plan::DefaultPhysicalExtensionCodec;

    use super::*;

    const FIXTURE: &str = "
        CREATE TABLE events(profile_id VARCHAR, channel VARCHAR, event_type VARCHAR, event_time TIMESTAMP,
                            email VARCHAR, phone VARCHAR, r INT, f BIGINT) AS VALUES
          ('p1', 'email', 'email_sent',  TIMESTAMP '2026-10-02 00:00:00', ' Ann.Lee+x@GoogleMail.com', '06 12 34 56 78', 5, 4),
          ('p1', 'email', 'email_open',  TIMESTAMP '2026-10-31 12:00:00', 'ann.lee@gmail.com', '+33 6 12 34 56 78', 1, 1),
          ('p2', 'email', 'email_sent',  TIMESTAMP '2026-10-20 00:00:00', 'bob@example.com', '0033612345678', 3, 3),
          ('p2', 'sms',   'sms_click',   TIMESTAMP '2026-10-25 06:00:00', NULL, 'nope', NULL, 2),
          ('p3', 'push',  'push_open',   TIMESTAMP '2026-11-02 00:00:00', 'not an email', NULL, 4, 9)";

    fn context() -> SessionContext {
        // several partitions so that plans contain repartitions and partial aggregates
        crate::test_util::ctx_with_config(SessionConfig::new().with_target_partitions(3))
    }

    fn sorted_pretty(batches: &[RecordBatch]) -> String {
        let text = pretty_format_batches(batches).unwrap().to_string();
        let mut lines: Vec<&str> = text.lines().collect();
        if lines.len() > 4 {
            let end = lines.len() - 1;
            let body = &mut lines[3..end];
            body.sort_unstable();
        }
        lines.join("\n")
    }

    /// Plans `sql` in a context with the fixture, ships the physical plan
    /// through `codec` and checks that a fresh context decodes a plan that
    /// displays and executes the same.
    async fn round_trip_with(sql: &str, codec: &dyn PhysicalExtensionCodec, fresh: SessionContext) {
        let ctx = context();
        ctx.sql(FIXTURE).await.unwrap().collect().await.unwrap();
        ctx.sql(
            "CREATE TABLE ids(record_id VARCHAR, id_type VARCHAR, id_value VARCHAR) AS \
                 SELECT profile_id, 'email', normalize_email(email) FROM events \
                 UNION ALL SELECT profile_id, 'phone', normalize_phone(phone, 'FR') FROM events",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let bytes = physical_plan_to_bytes_with_extension_codec(Arc::clone(&plan), codec).unwrap();
        let decoded =
            physical_plan_from_bytes_with_extension_codec(&bytes, &fresh.task_ctx(), codec)
                .unwrap();
        let before = displayable(plan.as_ref()).indent(true).to_string();
        let after = displayable(decoded.as_ref()).indent(true).to_string();
        assert_eq!(before, after);
        let expected = collect(plan, ctx.task_ctx()).await.unwrap();
        let got = collect(decoded, fresh.task_ctx()).await.unwrap();
        assert_eq!(sorted_pretty(&expected), sorted_pretty(&got), "{sql}");
        assert!(!expected.is_empty(), "{sql}");
    }

    async fn round_trip(sql: &str) {
        round_trip_with(sql, &SeglakeCodec::new(), context()).await;
        // a worker that did not register the functions: the codec builds them by name
        let bare = SessionContext::new_with_state(
            SessionStateBuilder::new().with_default_features().build(),
        );
        round_trip_with(sql, &SeglakeCodec::new(), bare).await;
        // composed with another codec
        let composed =
            SeglakeCodec::new().with_fallback(Arc::new(DefaultPhysicalExtensionCodec {}));
        round_trip_with(sql, &composed, context()).await;
    }

    #[tokio::test]
    async fn appetence_score_round_trip() {
        round_trip(
            "SELECT profile_id, channel,
                    appetence_score(event_type IN ('email_open','email_click','sms_click','push_open','ad_click'),
                                    event_time, TIMESTAMP '2026-11-01 00:00:00', 30) AS score
             FROM events GROUP BY 1, 2",
        )
        .await;
    }

    /// The erasure filter is not in any registry: its key and tombstones
    /// travel in the plan, and a bare worker filters the same rows.
    #[tokio::test]
    async fn the_erasure_filter_ships_with_its_tombstones() {
        use crate::erased_profiles::{ErasedProfiles, ErasureKey};
        use datafusion::prelude::col;
        let key = ErasureKey::new([9; 32]);
        let erased = ErasedProfiles::new(key.clone(), [key.hash("p2")]);
        let ctx = context();
        ctx.sql(FIXTURE).await.unwrap().collect().await.unwrap();
        let plan = ctx
            .table("events")
            .await
            .unwrap()
            .filter(erased.erased(col("profile_id")).is_not_true())
            .unwrap()
            .select_columns(&["profile_id"])
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let codec = SeglakeCodec::new();
        let bytes = physical_plan_to_bytes_with_extension_codec(plan, &codec).unwrap();
        let bare = SessionContext::new_with_state(
            SessionStateBuilder::new().with_default_features().build(),
        );
        let decoded =
            physical_plan_from_bytes_with_extension_codec(&bytes, &bare.task_ctx(), &codec)
                .unwrap();
        let got = collect(decoded, bare.task_ctx()).await.unwrap();
        // The fixture's rows without p2's two.
        assert_eq!(
            sorted_pretty(&got),
            "+------------+\n| profile_id |\n+------------+\n| p1         |\n| p1         |\n| p3         |\n+------------+"
        );
    }

    #[tokio::test]
    async fn rfm_segment_round_trip() {
        round_trip("SELECT profile_id, rfm_segment(r, f) AS segment FROM events").await;
    }

    #[tokio::test]
    async fn normalize_email_round_trip() {
        round_trip("SELECT profile_id, normalize_email(email) AS email FROM events").await;
    }

    #[tokio::test]
    async fn normalize_phone_round_trip() {
        round_trip("SELECT profile_id, normalize_phone(phone, 'FR') AS phone FROM events").await;
    }

    #[tokio::test]
    async fn stitch_identities_round_trip() {
        round_trip("SELECT * FROM stitch_identities('ids', 5)").await;
        round_trip(
            "SELECT person_id, count(*) AS n FROM stitch_identities('ids') GROUP BY person_id",
        )
        .await;
    }

    #[tokio::test]
    async fn stitch_dropped_identifiers_round_trip() {
        round_trip("SELECT * FROM stitch_dropped_identifiers('ids', 1)").await;
    }

    #[tokio::test]
    async fn logical_round_trip_of_the_stitch_table() {
        let ctx = context();
        ctx.sql(
            "CREATE TABLE ids(record_id VARCHAR, id_type VARCHAR, id_value VARCHAR) AS VALUES \
                 ('a', 'k', '1'), ('b', 'k', '1'), ('c', 'k', '2')",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        let codec = SeglakeCodec::new();
        for sql in [
            "SELECT * FROM stitch_identities('ids', 3)",
            "SELECT * FROM stitch_dropped_identifiers('ids', 1)",
        ] {
            let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
            let bytes = logical_plan_to_bytes_with_extension_codec(&plan, &codec).unwrap();
            let decoded =
                logical_plan_from_bytes_with_extension_codec(&bytes, &ctx.task_ctx(), &codec)
                    .unwrap();
            assert_eq!(
                plan.display_indent().to_string(),
                decoded.display_indent().to_string()
            );
            let expected = ctx
                .execute_logical_plan(plan)
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let got = ctx
                .execute_logical_plan(decoded)
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            assert_eq!(sorted_pretty(&expected), sorted_pretty(&got));
        }
    }

    #[test]
    fn unknown_payloads_are_rejected() {
        let codec = SeglakeCodec::new();
        let udf = PhysicalExtensionCodec::try_decode_udf(&codec, "lower", &[]);
        assert!(udf.is_err());
        assert!(PhysicalExtensionCodec::try_decode_udf(&codec, "rfm_segment", &[]).is_ok());
        assert!(PhysicalExtensionCodec::try_decode_udaf(&codec, "appetence_score", &[]).is_ok());
        let mut bad = STITCH_EXEC_MAGIC.to_vec();
        bad.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert!(SeglakeCodec::decode_stitch_exec(&bad[STITCH_EXEC_MAGIC.len()..], &[]).is_err());
        assert!(mode_from_u32(7).is_err());
    }
}
