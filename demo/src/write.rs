//! Parquet writing: the writer properties of the three tables and the
//! encoding of a batch into one file.

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::{DemoError, EventOrder, MAX_ROW_GROUP_ROWS, events_schema};

fn base_props() -> Result<parquet::file::properties::WriterPropertiesBuilder, ParquetError> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page))
}

pub(crate) fn profiles_props(unique_columns: &[&str]) -> Result<WriterProperties, ParquetError> {
    let mut b = base_props()?;
    for c in unique_columns {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
    }
    Ok(b.build())
}

pub(crate) fn events_props(
    order: EventOrder,
    row_group_rows: usize,
) -> Result<WriterProperties, ParquetError> {
    let schema = events_schema();
    let column = |name: &str| SortingColumn {
        column_idx: schema.index_of(name).expect("an events column") as i32,
        descending: false,
        nulls_first: false,
    };
    let sorting = match order {
        EventOrder::Time => vec![column("event_time")],
        EventOrder::TypeThenTime => vec![column("event_type"), column("event_time")],
    };
    Ok(base_props()?
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_column_dictionary_enabled(ColumnPath::from("event_id"), false)
        .set_sorting_columns(Some(sorting))
        .build())
}

pub(crate) fn encode(batch: &RecordBatch, props: WriterProperties) -> Result<Vec<u8>, DemoError> {
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(buf)
}
