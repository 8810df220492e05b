//! MySQL and MariaDB: one connection per call, a read-only session and transaction with a
//! statement timeout, rows decoded by column type and streamed.

use futures_util::StreamExt as _;
use serde_json::Value as Json;
use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::types::time::{Date, PrimitiveDateTime};
use sqlx::{AssertSqlSafe, Column as _, Connection as _, Executor as _, Row as _, SqlSafeStr as _};
use sqlx::{Statement as _, TypeInfo as _, ValueRef as _};

use super::{
    Column, Sink, Target, WarehouseError, bytes_to_json, classify_sqlx, float_to_json, wrapped,
};

const WHAT: &str = "MySQL";

async fn connect(target: &Target) -> Result<MySqlConnection, WarehouseError> {
    // sqlx knows the `mysql:` scheme; MariaDB users often write `mariadb:`.
    let url = match target.url.strip_prefix("mariadb:") {
        Some(rest) => format!("mysql:{rest}"),
        None => target.url.clone(),
    };
    match tokio::time::timeout(super::CONNECT_TIMEOUT, MySqlConnection::connect(&url)).await {
        Ok(result) => result.map_err(|e| classify_sqlx(e, WHAT)),
        Err(_) => Err(WarehouseError::new(
            "unreachable",
            format!(
                "no answer from the MySQL server within {} s; check the host and port",
                super::CONNECT_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Make the session read-only with a statement timeout, and start a read-only transaction.
async fn begin(conn: &mut MySqlConnection, target: &Target) -> Result<String, WarehouseError> {
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| classify_sqlx(e, WHAT))?;
    let secs = target.statement_timeout.as_secs().max(1);
    // MariaDB spells the timeout max_statement_time (seconds); MySQL max_execution_time (ms).
    let timeout = if version.contains("MariaDB") {
        format!("SET SESSION max_statement_time = {secs}")
    } else {
        format!("SET SESSION max_execution_time = {}", secs * 1000)
    };
    let setup = format!(
        "SET SESSION TRANSACTION READ ONLY; {timeout}; SET SESSION time_zone = '+00:00'; START TRANSACTION READ ONLY"
    );
    sqlx::raw_sql(AssertSqlSafe(setup))
        .execute(&mut *conn)
        .await
        .map_err(|e| classify_sqlx(e, WHAT))?;
    Ok(version)
}

pub async fn test(target: &Target) -> Result<String, WarehouseError> {
    let mut conn = connect(target).await?;
    let version = begin(&mut conn, target).await?;
    sqlx::query("SELECT 1")
        .execute(&mut conn)
        .await
        .map_err(|e| classify_sqlx(e, WHAT))?;
    let _ = conn.close().await;
    Ok(version)
}

async fn columns(conn: &mut MySqlConnection, query: &str) -> Result<Vec<Column>, WarehouseError> {
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
    if !sink.columns(columns).await {
        return Ok(());
    }
    let sql = wrapped("*", query, limit);
    let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(&mut conn);
    let mut chunk = Vec::with_capacity(sink.chunk);
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| classify_sqlx(e, WHAT))?;
        chunk.push(decode_row(&row)?);
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

fn decode_row(row: &MySqlRow) -> Result<Vec<Json>, WarehouseError> {
    (0..row.columns().len())
        .map(|i| decode(row, i).map_err(|e| classify_sqlx(e, WHAT)))
        .collect()
}

/// One value as JSON, by the column's type.
fn decode(row: &MySqlRow, i: usize) -> Result<Json, sqlx::Error> {
    if row.try_get_raw(i)?.is_null() {
        return Ok(Json::Null);
    }
    let type_name = row.column(i).type_info().name().to_owned();
    Ok(match type_name.as_str() {
        // TINYINT(1): MySQL's BOOLEAN. 0 and 1 are false and true; other values stay numbers.
        "BOOLEAN" => match row.try_get_unchecked::<i64, _>(i)? {
            0 => Json::Bool(false),
            1 => Json::Bool(true),
            n => Json::from(n),
        },
        "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "YEAR" => {
            Json::from(row.try_get_unchecked::<i64, _>(i)?)
        }
        t if t.ends_with("UNSIGNED") => Json::from(row.try_get_unchecked::<u64, _>(i)?),
        "BIT" => Json::from(row.try_get_unchecked::<u64, _>(i)?),
        "FLOAT" => float_to_json(f64::from(row.try_get_unchecked::<f32, _>(i)?)),
        "DOUBLE" => float_to_json(row.try_get_unchecked::<f64, _>(i)?),
        // DECIMAL travels as text; keep it a JSON number.
        "DECIMAL" => {
            let text: &str = row.try_get_unchecked(i)?;
            serde_json::from_str::<serde_json::Number>(text)
                .map_or_else(|_| Json::String(text.to_owned()), Json::Number)
        }
        "DATETIME" | "TIMESTAMP" => {
            let t: PrimitiveDateTime = row.try_get_unchecked(i)?;
            Json::String(format_datetime(t))
        }
        "DATE" => {
            let d: Date = row.try_get_unchecked(i)?;
            Json::String(format!(
                "{:04}-{:02}-{:02}",
                d.year(),
                u8::from(d.month()),
                d.day()
            ))
        }
        "TIME" => {
            let t: sqlx::mysql::types::MySqlTime = row.try_get_unchecked(i)?;
            Json::String(t.to_string())
        }
        "JSON" => {
            let sqlx::types::Json(v): sqlx::types::Json<Json> = row.try_get_unchecked(i)?;
            v
        }
        _ => {
            let bytes: &[u8] = row.try_get_unchecked(i)?;
            bytes_to_json(bytes)
        }
    })
}

fn format_datetime(t: PrimitiveDateTime) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let micros = t.microsecond();
    if micros != 0 {
        s.push_str(&format!(".{micros:06}"));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_rfc3339_utc() {
        let t = PrimitiveDateTime::new(
            Date::from_calendar_date(2024, time::Month::March, 5).unwrap(),
            time::Time::from_hms_micro(6, 7, 8, 90).unwrap(),
        );
        assert_eq!(format_datetime(t), "2024-03-05T06:07:08.000090Z");
        let t = PrimitiveDateTime::new(
            Date::from_calendar_date(2024, time::Month::March, 5).unwrap(),
            time::Time::from_hms(6, 7, 8).unwrap(),
        );
        assert_eq!(format_datetime(t), "2024-03-05T06:07:08Z");
    }
}
