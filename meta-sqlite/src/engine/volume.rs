//! Formatting the volume, its settings and its usage counters.

use std::sync::Arc;

use async_trait::async_trait;
use meta_api::backend::Volume;
use meta_api::{Format, Result, Usage};

use crate::engine::node::usage;
use crate::schema;
use crate::txn::db_err;
use crate::SqliteMeta;

#[async_trait]
impl Volume for SqliteMeta {
    fn name(&self) -> &'static str {
        "sqlite3"
    }

    async fn init(&self, format: &Format, force: bool) -> Result<()> {
        self.db
            .txn(|conn, _| {
                Box::pin(async move {
                    schema::create_tables(conn).await?;
                    schema::format_volume(conn, format, force).await
                })
            })
            .await?;
        *self.format.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(format.clone()));
        Ok(())
    }

    async fn load(&self) -> Result<Format> {
        Ok((*self.reload_format().await?).clone())
    }

    async fn settings(&self) -> Result<Format> {
        Ok((*self.fmt().await?).clone())
    }

    async fn usage(&self) -> Result<Usage> {
        self.fmt().await?;
        let mut conn = self.db.pool.acquire().await.map_err(db_err)?;
        let (space, inodes) = usage(&mut conn).await?;
        Ok(Usage { space, inodes })
    }

    /// Syncs the write-ahead log (commits are written at once but synced only here).
    async fn sync(&self) -> Result<()> {
        self.db.sync().await
    }
}
