//! The Management API front door: route matching (`/api/v2/...` → [`Route`]
//! and its stats template), bearer-token authentication, scope checks, and
//! dispatch to the users, search, roles and tickets handlers.

use serde_json::json;

use crate::server::{Incoming, Reply};
use crate::state::State;
use crate::util;

use super::common::{insufficient_scope, invalid_uri};
use super::roles::{assign_user_roles, create_role, list_roles, list_user_roles};
use super::search::list_users;
use super::tickets::{
    email_verification_ticket, get_job, password_change_ticket, verification_email_job,
};
use super::users::{create_user, delete_user, get_user, patch_user, users_by_email};

/// A matched Management API route (ids already percent-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    CreateUser,
    ListUsers,
    GetUser(String),
    PatchUser(String),
    DeleteUser(String),
    UsersByEmail,
    ListRoles,
    CreateRole,
    ListUserRoles(String),
    AssignUserRoles(String),
    PasswordChangeTicket,
    EmailVerificationTicket,
    VerificationEmailJob,
    GetJob(String),
}

/// Matches `method` and the path after `/api/v2`. Returns the route and its
/// stats template. Wrong methods on known paths don't match (→ 404).
pub fn match_route(method: &str, rest: &str) -> Option<(Route, &'static str)> {
    let rest = rest.strip_prefix('/')?;
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    let id = |s: &str| util::percent_decode(s);
    let m = method;
    Some(match segs.as_slice() {
        ["users"] if m == "POST" => (Route::CreateUser, "POST /api/v2/users"),
        ["users"] if m == "GET" => (Route::ListUsers, "GET /api/v2/users"),
        ["users", u] if m == "GET" => (Route::GetUser(id(u)), "GET /api/v2/users/{id}"),
        ["users", u] if m == "PATCH" => (Route::PatchUser(id(u)), "PATCH /api/v2/users/{id}"),
        ["users", u] if m == "DELETE" => (Route::DeleteUser(id(u)), "DELETE /api/v2/users/{id}"),
        ["users-by-email"] if m == "GET" => (Route::UsersByEmail, "GET /api/v2/users-by-email"),
        ["roles"] if m == "GET" => (Route::ListRoles, "GET /api/v2/roles"),
        ["roles"] if m == "POST" => (Route::CreateRole, "POST /api/v2/roles"),
        ["users", u, "roles"] if m == "GET" => {
            (Route::ListUserRoles(id(u)), "GET /api/v2/users/{id}/roles")
        }
        ["users", u, "roles"] if m == "POST" => (
            Route::AssignUserRoles(id(u)),
            "POST /api/v2/users/{id}/roles",
        ),
        ["tickets", "password-change"] if m == "POST" => (
            Route::PasswordChangeTicket,
            "POST /api/v2/tickets/password-change",
        ),
        ["tickets", "email-verification"] if m == "POST" => (
            Route::EmailVerificationTicket,
            "POST /api/v2/tickets/email-verification",
        ),
        ["jobs", "verification-email"] if m == "POST" => (
            Route::VerificationEmailJob,
            "POST /api/v2/jobs/verification-email",
        ),
        ["jobs", j] if m == "GET" => (Route::GetJob(id(j)), "GET /api/v2/jobs/{id}"),
        _ => return None,
    })
}

impl Route {
    /// Checks the token's scopes. Each inner list is an "any of" group; all
    /// groups must be satisfied; the first unsatisfied group is reported.
    pub fn check_scopes(&self, scopes: &[String]) -> Result<(), Reply> {
        let groups: &[&[&str]] = match self {
            Route::CreateUser => &[&["create:users"]],
            Route::ListUsers | Route::GetUser(_) | Route::UsersByEmail => &[&["read:users"]],
            Route::DeleteUser(_) => &[&["delete:users"]],
            // Auth0's reference lists both scopes for reading a job.
            Route::GetJob(_) => &[&["create:users", "read:users"]],
            Route::PatchUser(_) | Route::VerificationEmailJob => &[&["update:users"]],
            Route::ListRoles => &[&["read:roles"]],
            Route::CreateRole => &[&["create:roles"]],
            Route::ListUserRoles(_) => &[&["read:users"], &["read:roles"]],
            Route::AssignUserRoles(_) => &[&["create:role_members", "update:users"]],
            Route::PasswordChangeTicket | Route::EmailVerificationTicket => {
                &[&["create:user_tickets"]]
            }
        };
        for group in groups {
            if !group.iter().any(|g| scopes.iter().any(|s| s == g)) {
                return Err(insufficient_scope(group));
            }
        }
        Ok(())
    }
}

/// Checks the bearer token; returns its scopes.
pub fn authenticate(state: &State, inc: &Incoming, now_ms: u64) -> Result<Vec<String>, Reply> {
    let missing = || Reply::mgmt_error(401, "Missing authentication", None);
    let header = inc.authorization.as_deref().ok_or_else(missing)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or_else(missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(missing());
    }
    let invalid = |msg: &str| {
        Reply::mgmt(
            401,
            &json!({
                "statusCode": 401,
                "error": "Unauthorized",
                "message": msg,
                "attributes": {"error": msg},
            }),
        )
    };
    let info = state
        .tokens
        .get(token)
        .ok_or_else(|| invalid("Invalid token"))?;
    if now_ms >= info.expires_at_ms {
        return Err(invalid(
            "Expired token received for JSON Web Token validation",
        ));
    }
    Ok(info.scopes.clone())
}

impl Route {
    /// The `{id}` of a `/users/{id}...` route.
    fn path_user_id(&self) -> Option<&str> {
        match self {
            Route::GetUser(id)
            | Route::PatchUser(id)
            | Route::DeleteUser(id)
            | Route::ListUserRoles(id)
            | Route::AssignUserRoles(id) => Some(id),
            _ => None,
        }
    }
}

/// Runs the handler for a route that passed authentication and scope checks.
pub fn handle(state: &mut State, route: Route, inc: &Incoming) -> Reply {
    // Auth0 validates the path's user id (`format: user-id`) before anything
    // else: `nope` is a 400 `invalid_uri`, not a 404 (nor a 204 on DELETE).
    if let Some(id) = route.path_user_id() {
        if !crate::validate::is_user_id(id) {
            return invalid_uri(&crate::validate::user_id_format_message(id));
        }
    }
    let result = match route {
        Route::CreateUser => create_user(state, inc),
        Route::ListUsers => list_users(state, inc),
        Route::GetUser(id) => get_user(state, inc, &id),
        Route::PatchUser(id) => patch_user(state, inc, &id),
        Route::DeleteUser(id) => delete_user(state, inc, &id),
        Route::UsersByEmail => users_by_email(state, inc),
        Route::ListRoles => list_roles(state, inc),
        Route::CreateRole => create_role(state, inc),
        Route::ListUserRoles(id) => list_user_roles(state, inc, &id),
        Route::AssignUserRoles(id) => assign_user_roles(state, inc, &id),
        Route::PasswordChangeTicket => password_change_ticket(state, inc),
        Route::EmailVerificationTicket => email_verification_ticket(state, inc),
        Route::VerificationEmailJob => verification_email_job(state, inc),
        Route::GetJob(id) => get_job(state, inc, &id),
    };
    result.unwrap_or_else(|e| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            match_route("GET", "/users/auth0%7Cabc").map(|r| r.0),
            Some(Route::GetUser("auth0|abc".into()))
        );
        assert_eq!(
            match_route("POST", "/users/auth0%7Cabc/roles").map(|r| r.1),
            Some("POST /api/v2/users/{id}/roles")
        );
        assert_eq!(
            match_route("DELETE", "/users/auth0%7Cabc"),
            Some((
                Route::DeleteUser("auth0|abc".into()),
                "DELETE /api/v2/users/{id}"
            ))
        );
        assert_eq!(
            match_route("GET", "/users"),
            Some((Route::ListUsers, "GET /api/v2/users"))
        );
        assert_eq!(
            match_route("GET", "/jobs/job_abc"),
            Some((Route::GetJob("job_abc".into()), "GET /api/v2/jobs/{id}"))
        );
        assert!(match_route("DELETE", "/users").is_none());
        assert!(match_route("PUT", "/users").is_none());
        assert!(match_route("POST", "/users/").is_none());
        assert!(match_route("GET", "/nope").is_none());
        assert!(match_route("GET", "").is_none());
    }

    #[test]
    fn scope_groups() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(Route::AssignUserRoles("x".into())
            .check_scopes(&s(&["update:users"]))
            .is_ok());
        assert!(Route::ListUserRoles("x".into())
            .check_scopes(&s(&["read:users"]))
            .is_err());
        assert!(Route::ListUserRoles("x".into())
            .check_scopes(&s(&["read:users", "read:roles"]))
            .is_ok());
        assert!(Route::DeleteUser("x".into())
            .check_scopes(&s(&["update:users", "read:users"]))
            .is_err());
        assert!(Route::GetJob("x".into())
            .check_scopes(&s(&["create:users"]))
            .is_ok());
        assert!(Route::GetJob("x".into())
            .check_scopes(&s(&["read:users"]))
            .is_ok());
        assert!(Route::ListUsers
            .check_scopes(&s(&["update:users"]))
            .is_err());
    }
}
