//! PostgreSQL: one connection per call, a `READ ONLY` transaction with `statement_timeout`,
//! rows converted to JSON by the server (`row_to_json`) and streamed.

use futures_util::StreamExt as _;
use serde_json::Value as Json;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Column as _, Connection as _, Executor as _, Row as _, SqlSafeStr as _};
use sqlx::{Statement as _, TypeInfo as _};

use super::{
    ALIAS, Column, Sink, Target, WarehouseError, classify_sqlx, naive_timestamp_to_rfc3339, wrapped,
};

const WHAT: &str = "PostgreSQL";

async fn connect(target: &Target) -> Result<PgConnection, WarehouseError> {
    match tokio::time::timeout(super::CONNECT_TIMEOUT, PgConnection::connect(&target.url)).await {
        Ok(result) => result.map_err(|e| classify_sqlx(e, WHAT)),
        Err(_) => Err(WarehouseError::new(
            "unreachable",
            format!(
                "no answer from the PostgreSQL server within {} s; check the host and port",
                super::CONNECT_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Start the read-only transaction with the statement timeout and UTC for timestamps.
async fn begin(conn: &mut PgConnection, target: &Target) -> Result<(), WarehouseError> {
    let setup = format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = {}; SET LOCAL TimeZone = 'UTC'",
        target.statement_timeout.as_millis().max(1)
    );
    sqlx::raw_sql(AssertSqlSafe(setup))
        .execute(&mut *conn)
        .await
        .map_err(|e| classify_sqlx(e, WHAT))?;
    Ok(())
}

pub async fn test(target: &Target) -> Result<String, WarehouseError> {
    let mut conn = connect(target).await?;
    begin(&mut conn, target).await?;
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| classify_sqlx(e, WHAT))?;
    let _ = conn.close().await;
    Ok(version)
}

async fn columns(conn: &mut PgConnection, query: &str) -> Result<Vec<Column>, WarehouseError> {
    let statement = conn
        .prepare(AssertSqlSafe(wrapped("*", query, None)).into_sql_str())
        .await
        .map_err(|e| classify_sqlx(e, WHAT))?;
    Ok(statement
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            type_name: c.type_info().name().to_owned(),
        })
        .collect())
}

pub async fn describe(target: &Target, query: &str) -> Result<Vec<Column>, WarehouseError> {
    let mut conn = connect(target).await?;
    begin(&mut conn, target).await?;
    let columns = columns(&mut conn, query).await?;
    let _ = conn.close().await;
    Ok(columns)
}

pub async fn extract(
    target: &Target,
    query: &str,
    limit: Option<usize>,
    sink: Sink,
) -> Result<(), WarehouseError> {
    let mut conn = connect(target).await?;
    begin(&mut conn, target).await?;
    let columns = columns(&mut conn, query).await?;
    // Timestamps without a zone are read as UTC.
    let naive: Vec<bool> = columns.iter().map(|c| c.type_name == "TIMESTAMP").collect();
    if !sink.columns(columns.clone()).await {
        return Ok(());
    }
    let sql = wrapped(&format!("row_to_json({ALIAS})::text"), query, limit);
    let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(&mut conn);
    let mut chunk = Vec::with_capacity(sink.chunk);
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| classify_sqlx(e, WHAT))?;
        let text: &str = row.try_get(0).map_err(|e| classify_sqlx(e, WHAT))?;
        let mut values = parse_row(text, columns.len())?;
        for (value, naive) in values.iter_mut().zip(&naive) {
            if *naive && let Json::String(s) = value {
                *s = naive_timestamp_to_rfc3339(s);
            }
        }
        chunk.push(values);
        if chunk.len() >= sink.chunk
            && !sink
                .rows(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(sink.chunk),
                ))
                .await
        {
            return Ok(());
        }
    }
    drop(rows);
    if !chunk.is_empty() {
        sink.rows(chunk).await;
    }
    let _ = conn.close().await;
    Ok(())
}

/// The values of a `row_to_json` object, in column order (the server writes the keys in
/// column order; column names are unique, `describe` checks it).
fn parse_row(text: &str, width: usize) -> Result<Vec<Json>, WarehouseError> {
    let OrderedValues(values) = serde_json::from_str(text).map_err(|e| {
        WarehouseError::new(
            "warehouse_error",
            format!("PostgreSQL returned a row that is not JSON: {e}"),
        )
    })?;
    if values.len() != width {
        return Err(WarehouseError::new(
            "warehouse_error",
            format!(
                "PostgreSQL returned {} values for {width} columns",
                values.len()
            ),
        ));
    }
    Ok(values)
}

/// A JSON object's values in document order.
struct OrderedValues(Vec<Json>);

impl<'de> serde::Deserialize<'de> for OrderedValues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OrderedValues;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedValues, A::Error> {
                let mut values = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((_, value)) = map.next_entry::<serde::de::IgnoredAny, Json>()? {
                    values.push(value);
                }
                Ok(OrderedValues(values))
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_values_keep_column_order() {
        let values = parse_row(r#"{"z":1,"a":"x","m":null,"b":{"k":[1,2]}}"#, 4).unwrap();
        assert_eq!(
            values,
            vec![
                Json::from(1),
                Json::from("x"),
                Json::Null,
                serde_json::json!({"k": [1, 2]})
            ]
        );
        assert!(parse_row(r#"{"a":1}"#, 2).is_err());
        assert!(parse_row("[1]", 1).is_err());
    }
}
