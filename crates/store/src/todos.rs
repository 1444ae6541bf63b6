//! The todo queries, as methods of [`Scoped`]: one tenant's todos (in whichever database the
//! tenant lives) and the caller's todos across their tenants.

use limits::Quota;
use uuid::Uuid;

use crate::{
    Cursor, Error, Page, PageRequest, Q, Result, TenantId, Todo, TodoFilter, TodoId, TodoPatch, TodoTitle,
    queries::{ANYONE, EDITORS, fetch_limit, gated, gated_rows, page, page_by, step},
    rows::DbRow,
    scope::Scoped,
    steps::Access,
};

/// The todo in columns `i..i + 6`, or `None` when an outer join found none.
fn todo_at(row: &DbRow, i: usize) -> Option<Todo> {
    let id: Uuid = row.col::<Option<Uuid>>(i + 1)?;
    Some(Todo {
        tenant_id: TenantId(row.col(i)),
        id: TodoId(id),
        title: row.col(i + 2),
        complete: row.col(i + 3),
        created_at: row.col(i + 4),
        updated_at: row.col(i + 5),
    })
}

impl Scoped<'_> {
    pub async fn list_todos(&self, tenant: TenantId, filter: TodoFilter, req: PageRequest) -> Result<Page<Todo>> {
        let c = req.cursor.unwrap_or_else(Cursor::start);
        let rows = self
            .run_tenant(
                tenant,
                Access::Read,
                &[step(Q::TodoList, &[&tenant.0, &filter.complete, &c.created_at, &c.id, &fetch_limit(req)])],
            )
            .await?;
        gated_rows(&rows[0])?;
        let items = rows[0].iter().filter_map(|r| todo_at(r, 1)).collect();
        Ok(page(items, req, |t| (t.created_at, t.id.0)))
    }

    pub async fn create_todo(&self, tenant: TenantId, id: TodoId, title: &TodoTitle, complete: bool) -> Result<Todo> {
        let (names, caps) = (self.plans.names(), self.plans.caps(Quota::Todos));
        let rows = self
            .run_tenant(
                tenant,
                Access::Write,
                &[step(Q::TodoCreate, &[&tenant.0, &id.0, &title.as_str(), &complete, names, caps])],
            )
            .await?;
        let row = gated(&rows[0], EDITORS)?;
        todo_at(row, 1).ok_or_else(|| crate::quota::exceeded(row, 7, Quota::Todos).unwrap_or(Error::NotFound))
    }

    pub async fn get_todo(&self, tenant: TenantId, id: TodoId) -> Result<Todo> {
        let rows = self.run_tenant(tenant, Access::Read, &[step(Q::TodoGet, &[&tenant.0, &id.0])]).await?;
        let row = gated(&rows[0], ANYONE)?;
        todo_at(row, 1).ok_or(Error::NotFound)
    }

    pub async fn update_todo(&self, tenant: TenantId, id: TodoId, patch: &TodoPatch) -> Result<Todo> {
        let title = patch.title.as_ref().map(TodoTitle::as_str);
        let rows = self
            .run_tenant(tenant, Access::Write, &[step(Q::TodoUpdate, &[&tenant.0, &id.0, &title, &patch.complete])])
            .await?;
        let row = gated(&rows[0], EDITORS)?;
        todo_at(row, 1).ok_or(Error::NotFound)
    }

    pub async fn delete_todo(&self, tenant: TenantId, id: TodoId) -> Result<()> {
        let rows = self.run_tenant(tenant, Access::Write, &[step(Q::TodoDelete, &[&tenant.0, &id.0])]).await?;
        let row = gated(&rows[0], EDITORS)?;
        row.col::<bool>(1).then_some(()).ok_or(Error::NotFound)
    }

    /// Todos of every tenant the caller belongs to.
    pub async fn list_all_todos(&self, filter: TodoFilter, req: PageRequest) -> Result<Page<Todo>> {
        let c = req.cursor.unwrap_or_else(Cursor::start);
        let rows = self.run_list_all(&[&filter.complete, &c.created_at, &c.tenant, &c.id, &fetch_limit(req)]).await?;
        let items = rows.iter().filter_map(|r| todo_at(r, 0)).collect();
        Ok(page_by(items, req, |t| (t.created_at, t.tenant_id.0, t.id.0)))
    }
}
