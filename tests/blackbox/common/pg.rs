//! A database on the PostgreSQL server `DATABASE_URL` names, for the
//! store's tests and benches (`scripts/test` starts a throw-away server).
//! Without `DATABASE_URL` there is none and the caller skips, unless
//! `IPGATE_REQUIRE_POSTGRES` is set: then it fails.

/// Database `name` (made new when `fresh`, else made when missing), as
/// its URL without the password, and the password apart, as ipgate takes
/// them. None without `DATABASE_URL`.
pub async fn database(name: &str, fresh: bool) -> Option<(String, Option<String>)> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        assert!(
            std::env::var_os("IPGATE_REQUIRE_POSTGRES").is_none(),
            "IPGATE_REQUIRE_POSTGRES is set but DATABASE_URL is not"
        );
        eprintln!(
            "skipped on PostgreSQL: no DATABASE_URL (scripts/test starts a throw-away server)"
        );
        return None;
    };
    let config: tokio_postgres::Config = match url.parse() {
        Ok(c) => c,
        Err(e) => panic!("DATABASE_URL: {e}"),
    };
    let (client, conn) = match config.connect(tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => panic!("connecting to DATABASE_URL: {e}"),
    };
    tokio::spawn(conn);
    let exists = match client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
    {
        Ok(row) => row.is_some(),
        Err(e) => panic!("listing databases: {e}"),
    };
    let mut statements = Vec::new();
    if exists && fresh {
        statements.push(format!("DROP DATABASE {name}"));
    }
    if !exists || fresh {
        statements.push(format!("CREATE DATABASE {name}"));
    }
    for s in statements {
        if let Err(e) = client.batch_execute(&s).await {
            panic!("{s}: {e}");
        }
    }
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    Some((format!("postgres://{user}@{host}:{port}/{name}"), password))
}
