//! The data model: the schemas of the three tables and the values of their
//! enumerated columns.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The values of `events.event_type`.
pub const EVENT_TYPES: [&str; 14] = [
    "page_view",
    "product_view",
    "add_to_cart",
    "purchase",
    "email_sent",
    "email_open",
    "email_click",
    "sms_sent",
    "sms_click",
    "push_sent",
    "push_open",
    "ad_impression",
    "ad_click",
    "store_visit",
];

/// The values of `events.channel`.
pub const CHANNELS: [&str; 7] = ["web", "app", "email", "sms", "push", "ads", "store"];

/// The values of `events.source`.
pub const EVENT_SOURCES: [&str; 5] = ["web", "app", "store", "crm", "ads"];

/// The values of `events.category`.
pub const CATEGORIES: [&str; 8] = [
    "electronics",
    "fashion",
    "home",
    "beauty",
    "sports",
    "books",
    "toys",
    "grocery",
];

/// The values of `identifiers.source`.
pub const IDENTIFIER_SOURCES: [&str; 4] = ["web", "app", "store", "crm"];

/// The values of `identifiers.id_type`.
pub const ID_TYPES: [&str; 4] = ["email", "phone", "customer_id", "device_id"];

/// Schema of `profiles`.
pub fn profiles_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("phone", DataType::Utf8, true),
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("first_name", DataType::Utf8, false),
        Field::new("city", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("birth_year", DataType::Int32, true),
        Field::new("gender", DataType::Utf8, true),
        Field::new("signup_date", DataType::Date32, false),
        Field::new("consent_email", DataType::Boolean, false),
        Field::new("consent_sms", DataType::Boolean, false),
        Field::new("consent_push", DataType::Boolean, false),
        Field::new("consent_ads", DataType::Boolean, false),
    ]))
}

/// Schema of `events` as stored in the files (without the `event_date`
/// partition column). `received_at` is when the HTTP collector received an
/// event (it deduplicates by it after a restart, see docs/collector.md):
/// always NULL in generated rows, which were never received by it.
pub fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("profile_id", DataType::Utf8, true),
        Field::new("device_id", DataType::Utf8, true),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, true),
        Field::new("product_id", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new(
            "received_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

/// Schema of `identifiers`.
pub fn identifiers_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("record_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("id_type", DataType::Utf8, false),
        Field::new("id_value", DataType::Utf8, true),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas() {
        let e = events_schema();
        assert!(e.field_with_name("event_date").is_err());
        assert_eq!(
            e.field_with_name("event_time").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert!(!e.field_with_name("event_id").unwrap().is_nullable());
        // The collector's arrival time: same type as event_time, nullable.
        let received_at = e.field_with_name("received_at").unwrap();
        assert!(received_at.is_nullable());
        assert_eq!(
            received_at.data_type(),
            e.field_with_name("event_time").unwrap().data_type()
        );
        assert_eq!(e.fields().len(), 11);
        assert_eq!(profiles_schema().fields().len(), 14);
        assert_eq!(identifiers_schema().fields().len(), 4);
    }
}
