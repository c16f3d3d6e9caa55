//! Management API roles: list and create roles, list a user's roles and
//! assign roles to a user.

use serde_json::Value;

use crate::server::{Incoming, Reply};
use crate::state::{Role, State};
use crate::util;
use crate::validate::{check_query, prop, QTy, Schema, Ty};

use super::common::{
    get_str, invalid_query, paged_roles, s, user_not_found, validated, HResult, PAGING_QUERY,
};

const ROLE_CREATE: Schema = Schema {
    props: &[prop("name", s(1, 50)), prop("description", s(0, 140))],
    required: &["name"],
    min_props: 0,
};

pub(super) fn list_roles(state: &State, inc: &Incoming) -> HResult {
    let allowed = [
        PAGING_QUERY[0],
        PAGING_QUERY[1],
        PAGING_QUERY[2],
        ("name_filter", QTy::Str),
    ];
    check_query(&inc.query, &allowed, &[]).map_err(|m| invalid_query(&m))?;
    let filter = inc
        .query_param("name_filter")
        .unwrap_or_default()
        .to_lowercase();
    let roles: Vec<&Role> = state
        .sorted_roles(None)
        .into_iter()
        .filter(|r| r.name.to_lowercase().contains(&filter))
        .collect();
    Ok(Reply::mgmt(200, &paged_roles(roles, inc)))
}

pub(super) fn create_role(state: &mut State, inc: &Incoming) -> HResult {
    let body = validated(inc, &ROLE_CREATE)?;
    let name = get_str(&body, "name").unwrap_or_default().to_string();
    if state
        .roles
        .iter()
        .any(|r| r.name.to_lowercase() == name.to_lowercase())
    {
        return Err(Reply::mgmt_error(409, "Role name already exists", None));
    }
    let role = Role {
        id: format!("rol_{}", util::random_alnum(16)),
        name,
        description: get_str(&body, "description").map(str::to_string),
    };
    let out = role.to_json();
    state.roles.push(role);
    Ok(Reply::mgmt(200, &out))
}

pub(super) fn list_user_roles(state: &State, inc: &Incoming, id: &str) -> HResult {
    check_query(&inc.query, &PAGING_QUERY, &[]).map_err(|m| invalid_query(&m))?;
    let user = state.user(id).ok_or_else(user_not_found)?;
    let roles = state.sorted_roles(Some(&user.role_ids));
    Ok(Reply::mgmt(200, &paged_roles(roles, inc)))
}

const ASSIGN_ROLES: Schema = Schema {
    props: &[prop(
        "roles",
        Ty::StrArray {
            min_items: 1,
            item_min: 1,
        },
    )],
    required: &["roles"],
    min_props: 0,
};

pub(super) fn assign_user_roles(state: &mut State, inc: &Incoming, id: &str) -> HResult {
    let body = validated(inc, &ASSIGN_ROLES)?;
    let ids: Vec<String> = body
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if state.user(id).is_none() {
        return Err(user_not_found());
    }
    if ids.iter().any(|r| state.role(r).is_none()) {
        return Err(Reply::mgmt_error(404, "The role does not exist.", None));
    }
    let user = state.user_mut(id).ok_or_else(user_not_found)?;
    for r in ids {
        if !user.role_ids.contains(&r) {
            user.role_ids.push(r);
        }
    }
    Ok(Reply::no_content())
}
