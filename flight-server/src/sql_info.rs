//! `GetSqlInfo`: the complete, correctly typed set of keys that the Flight
//! SQL JDBC driver (DatabaseMetaData) and ADBC read.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arrow_flight::sql::SqlInfo as I;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};

/// Bitmask with the given bits set.
fn bits(b: &[i32]) -> i32 {
    b.iter().fold(0, |acc, b| acc | (1 << b))
}

const KEYWORDS: &[&str] = &[
    "ANALYZE",
    "CASCADE",
    "COPY",
    "DESCRIBE",
    "EXPLAIN",
    "EXTERNAL",
    "ILIKE",
    "LIMIT",
    "LOCATION",
    "OFFSET",
    "PARTITIONED",
    "QUALIFY",
    "SHOW",
    "STORED",
    "TABLES",
    "UNNEST",
];
const NUMERIC_FUNCTIONS: &[&str] = &[
    "abs", "acos", "asin", "atan", "atan2", "cbrt", "ceil", "cos", "cot", "degrees", "exp",
    "floor", "ln", "log", "log10", "log2", "mod", "pi", "power", "radians", "random", "round",
    "signum", "sin", "sqrt", "tan", "trunc",
];
const STRING_FUNCTIONS: &[&str] = &[
    "ascii",
    "btrim",
    "char_length",
    "concat",
    "concat_ws",
    "initcap",
    "left",
    "length",
    "lower",
    "lpad",
    "ltrim",
    "md5",
    "octet_length",
    "position",
    "regexp_replace",
    "repeat",
    "replace",
    "reverse",
    "right",
    "rpad",
    "rtrim",
    "sha256",
    "split_part",
    "starts_with",
    "strpos",
    "substr",
    "substring",
    "to_hex",
    "translate",
    "trim",
    "upper",
];
const SYSTEM_FUNCTIONS: &[&str] = &["arrow_typeof", "coalesce", "nullif", "version"];
const DATETIME_FUNCTIONS: &[&str] = &[
    "current_date",
    "current_time",
    "date_bin",
    "date_part",
    "date_trunc",
    "extract",
    "from_unixtime",
    "make_date",
    "now",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_unixtime",
];

/// Built once per process.
pub fn sql_info_data() -> &'static SqlInfoData {
    static DATA: OnceLock<SqlInfoData> = OnceLock::new();
    DATA.get_or_init(|| {
        let mut b = SqlInfoDataBuilder::new();
        // Server
        b.append(I::FlightSqlServerName, "Seglake");
        b.append(I::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(I::FlightSqlServerArrowVersion, "59");
        b.append(I::FlightSqlServerReadOnly, false);
        b.append(I::FlightSqlServerSql, true);
        b.append(I::FlightSqlServerSubstrait, false);
        b.append(I::FlightSqlServerSubstraitMinVersion, "");
        b.append(I::FlightSqlServerSubstraitMaxVersion, "");
        // SqlSupportedTransaction::None: every statement commits on its own.
        b.append(I::FlightSqlServerTransaction, 0i32);
        // CancelFlightInfo and CancelQuery (service/cancel.rs).
        b.append(I::FlightSqlServerCancel, true);
        b.append(I::FlightSqlServerBulkIngestion, true);
        b.append(I::FlightSqlServerIngestTransactionsSupported, false);
        b.append(I::FlightSqlServerStatementTimeout, 0i32);
        b.append(I::FlightSqlServerTransactionTimeout, 0i32);
        // SQL language
        b.append(I::SqlDdlCatalog, false);
        b.append(I::SqlDdlSchema, true);
        b.append(I::SqlDdlTable, true);
        // SqlCaseSensitivity: unquoted identifiers are folded to lower case.
        b.append(I::SqlIdentifierCase, 3i32);
        b.append(I::SqlIdentifierQuoteChar, "\"");
        // Quoted identifiers keep their case.
        b.append(I::SqlQuotedIdentifierCase, 0i32);
        b.append(I::SqlAllTablesAreSelectable, true);
        // SqlNullOrdering: NULLs sort high (last in ASC) like PostgreSQL.
        b.append(I::SqlNullOrdering, 0i32);
        b.append(I::SqlKeywords, KEYWORDS);
        b.append(I::SqlNumericFunctions, NUMERIC_FUNCTIONS);
        b.append(I::SqlStringFunctions, STRING_FUNCTIONS);
        b.append(I::SqlSystemFunctions, SYSTEM_FUNCTIONS);
        b.append(I::SqlDatetimeFunctions, DATETIME_FUNCTIONS);
        b.append(I::SqlSearchStringEscape, "\\");
        b.append(I::SqlExtraNameCharacters, "");
        b.append(I::SqlSupportsColumnAliasing, true);
        b.append(I::SqlNullPlusNullIsNull, true);
        b.append(I::SqlSupportsConvert, BTreeMap::<i32, Vec<i32>>::new());
        b.append(I::SqlSupportsTableCorrelationNames, true);
        b.append(I::SqlSupportsDifferentTableCorrelationNames, false);
        b.append(I::SqlSupportsExpressionsInOrderBy, true);
        b.append(I::SqlSupportsOrderByUnrelated, true);
        // SqlSupportedGroupBy: unrelated and beyond select.
        b.append(I::SqlSupportedGroupBy, bits(&[0, 1]));
        b.append(I::SqlSupportsLikeEscapeClause, true);
        b.append(I::SqlSupportsNonNullableColumns, true);
        // SupportedSqlGrammar: minimum and core.
        b.append(I::SqlSupportedGrammar, bits(&[0, 1]));
        // SupportedAnsi92SqlGrammarLevel: entry and intermediate.
        b.append(I::SqlAnsi92SupportedLevel, bits(&[0, 1]));
        b.append(I::SqlSupportsIntegrityEnhancementFacility, false);
        // SqlOuterJoinsSupportLevel: full outer joins.
        b.append(I::SqlOuterJoinsSupportLevel, 2i32);
        b.append(I::SqlSchemaTerm, "schema");
        b.append(I::SqlProcedureTerm, "procedure");
        b.append(I::SqlCatalogTerm, "catalog");
        b.append(I::SqlCatalogAtStart, true);
        b.append(I::SqlSchemasSupportedActions, 0i32);
        b.append(I::SqlCatalogsSupportedActions, 0i32);
        b.append(I::SqlSupportedPositionedCommands, 0i32);
        b.append(I::SqlSelectForUpdateSupported, false);
        b.append(I::SqlStoredProceduresSupported, false);
        // SqlSupportedSubqueries: comparisons, EXISTS, IN, quantified.
        b.append(I::SqlSupportedSubqueries, bits(&[0, 1, 2, 3]));
        b.append(I::SqlCorrelatedSubqueriesSupported, true);
        // SqlSupportedUnions: UNION and UNION ALL.
        b.append(I::SqlSupportedUnions, bits(&[0, 1]));
        // Limits: 0 means "no limit or unknown".
        for key in [
            I::SqlMaxBinaryLiteralLength,
            I::SqlMaxCharLiteralLength,
            I::SqlMaxColumnNameLength,
            I::SqlMaxColumnsInGroupBy,
            I::SqlMaxColumnsInIndex,
            I::SqlMaxColumnsInOrderBy,
            I::SqlMaxColumnsInSelect,
            I::SqlMaxColumnsInTable,
            I::SqlMaxConnections,
            I::SqlMaxCursorNameLength,
            I::SqlMaxIndexLength,
            I::SqlDbSchemaNameLength,
            I::SqlMaxProcedureNameLength,
            I::SqlMaxCatalogNameLength,
            I::SqlMaxRowSize,
            I::SqlMaxStatementLength,
            I::SqlMaxStatements,
            I::SqlMaxTableNameLength,
            I::SqlMaxTablesInSelect,
            I::SqlMaxUsernameLength,
        ] {
            b.append(key, 0i64);
        }
        b.append(I::SqlMaxRowSizeIncludesBlobs, false);
        // SqlTransactionIsolationLevel: none.
        b.append(I::SqlDefaultTransactionIsolation, 0i32);
        b.append(I::SqlTransactionsSupported, false);
        b.append(I::SqlSupportedTransactionsIsolationLevels, 0i32);
        b.append(I::SqlDataDefinitionCausesTransactionCommit, false);
        b.append(I::SqlDataDefinitionsInTransactionsIgnored, true);
        // SqlSupportedResultSetType: forward only.
        b.append(I::SqlSupportedResultSetTypes, bits(&[1]));
        // Result set concurrency: read only, for every result set type.
        for key in [
            I::SqlSupportedConcurrenciesForResultSetUnspecified,
            I::SqlSupportedConcurrenciesForResultSetForwardOnly,
            I::SqlSupportedConcurrenciesForResultSetScrollSensitive,
            I::SqlSupportedConcurrenciesForResultSetScrollInsensitive,
        ] {
            b.append(key, bits(&[1]));
        }
        b.append(I::SqlBatchUpdatesSupported, true);
        b.append(I::SqlSavepointsSupported, false);
        b.append(I::SqlNamedParametersSupported, false);
        b.append(I::SqlLocatorsUpdateCopy, false);
        b.append(I::SqlStoredFunctionsUsingCallSyntaxSupported, false);
        b.build().expect("static SqlInfo data is valid")
    })
}
