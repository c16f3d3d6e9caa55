//! Management API users: create, read, patch, delete and users-by-email,
//! with their payload schemas and metadata merging. Listing and searching
//! (`GET /users`) lives in `search`.

use serde_json::{Map, Value};

use crate::server::{Incoming, Reply};
use crate::state::{State, User};
use crate::util;
use crate::validate::{
    check_query, password_has_personal_info, prop, prop_d, Format, QTy, Schema, Ty, NONEMPTY,
};

use super::common::{
    check_metadata_keys, connection_not_found, get_bool, get_obj, get_str, invalid_body,
    invalid_query, personal_info_password, project, s, user_exists, user_not_found, validated,
    weak_password, HResult, EMAIL_DESC, FIELDS_QUERY,
};

const EMAIL: Ty = Ty::Str {
    min: 0,
    max: Some(254),
    format: Some(Format::Email),
};
const PHONE: Ty = Ty::Str {
    min: 0,
    max: None,
    format: Some(Format::E164),
};
const PHONE_DESC: &str = "The user's phone number (following the E.164 recommendation)";

const USER_CREATE: Schema = Schema {
    props: &[
        prop_d("email", EMAIL, EMAIL_DESC),
        prop_d("phone_number", PHONE, PHONE_DESC),
        prop("user_metadata", Ty::Object),
        prop("blocked", Ty::Bool),
        prop("email_verified", Ty::Bool),
        prop("phone_verified", Ty::Bool),
        prop("app_metadata", Ty::Object),
        prop("given_name", s(1, 150)),
        prop("family_name", s(1, 150)),
        prop("name", s(1, 300)),
        prop("nickname", s(1, 300)),
        prop("picture", s(1, 2000)),
        prop("user_id", s(1, 255)),
        prop("connection", NONEMPTY),
        prop("password", s(1, 1000)),
        prop("verify_email", Ty::Bool),
        prop("username", s(1, 128)),
    ],
    required: &["connection"],
    min_props: 0,
};

const USER_PATCH: Schema = Schema {
    props: &[
        prop("blocked", Ty::Bool),
        prop("email_verified", Ty::Bool),
        prop_d("email", EMAIL, EMAIL_DESC),
        prop_d("phone_number", PHONE, PHONE_DESC),
        prop("phone_verified", Ty::Bool),
        prop("user_metadata", Ty::Object),
        prop("app_metadata", Ty::Object),
        prop("given_name", s(1, 150)),
        prop("family_name", s(1, 150)),
        prop("name", s(1, 300)),
        prop("nickname", s(1, 300)),
        prop("picture", s(1, 2000)),
        prop("verify_email", Ty::Bool),
        prop("verify_phone_number", Ty::Bool),
        prop("password", s(1, 1000)),
        prop("connection", NONEMPTY),
        prop("client_id", NONEMPTY),
        prop("username", s(1, 128)),
    ],
    required: &[],
    min_props: 1,
};

pub(super) fn create_user(state: &mut State, inc: &Incoming) -> HResult {
    let body = validated(inc, &USER_CREATE)?;
    check_metadata_keys(&body)?;
    let connection = get_str(&body, "connection").unwrap_or_default();
    if connection != state.settings.connection_name {
        return Err(connection_not_found());
    }
    let Some(email) = get_str(&body, "email") else {
        return Err(invalid_body(
            "Payload validation error: 'Missing required property: email'.",
        ));
    };
    let Some(password) = get_str(&body, "password") else {
        return Err(invalid_body(
            "Payload validation error: 'Missing required property: password'.",
        ));
    };
    if !state.config.password_ok(password) {
        return Err(weak_password());
    }
    let email = email.to_lowercase();
    if state
        .users
        .iter()
        .any(|u| u.connection == connection && u.email.as_deref() == Some(email.as_str()))
    {
        return Err(user_exists());
    }
    let local_id = match get_str(&body, "user_id") {
        Some(id) => id.strip_prefix("auth0|").unwrap_or(id).to_string(),
        None => util::random_hex(12),
    };
    let user_id = format!("auth0|{local_id}");
    if state.user(&user_id).is_some() {
        return Err(user_exists());
    }
    let username = get_str(&body, "username").map(str::to_string);
    if let Some(name) = &username {
        if state.users.iter().any(|u| {
            u.username
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        }) {
            return Err(Reply::mgmt_error(
                409,
                "The username provided is in use already.",
                Some("auth0_idp_error"),
            ));
        }
    }

    let email_verified = get_bool(&body, "email_verified").unwrap_or(false);
    let verify_email = get_bool(&body, "verify_email").unwrap_or(!email_verified);
    let local_part = email.split('@').next().unwrap_or_default().to_string();
    let now = util::now_rfc3339();
    let user = User {
        user_id: user_id.clone(),
        local_id,
        connection: connection.to_string(),
        email_verified,
        username,
        phone_number: get_str(&body, "phone_number").map(str::to_string),
        phone_verified: get_bool(&body, "phone_verified"),
        name: Some(get_str(&body, "name").unwrap_or(&email).to_string()),
        nickname: Some(
            get_str(&body, "nickname")
                .map(str::to_string)
                .unwrap_or(local_part),
        ),
        picture: Some(
            get_str(&body, "picture")
                .map(str::to_string)
                .unwrap_or_else(|| util::gravatar_url(&email)),
        ),
        given_name: get_str(&body, "given_name").map(str::to_string),
        family_name: get_str(&body, "family_name").map(str::to_string),
        user_metadata: get_obj(&body, "user_metadata"),
        app_metadata: get_obj(&body, "app_metadata"),
        blocked: get_bool(&body, "blocked"),
        email: Some(email),
        created_at: now.clone(),
        updated_at: now,
        logins_count: 0,
        last_login: None,
        last_ip: None,
        role_ids: Vec::new(),
    };
    if state.config.password_no_personal_info
        && password_has_personal_info(password, &user.personal_data())
    {
        return Err(personal_info_password());
    }
    let out = user.to_json();
    state.users.push(user);
    if verify_email {
        state.send_verification_email(&user_id, "user_created", None);
    }
    Ok(Reply::mgmt(201, &out))
}

pub(super) fn get_user(state: &State, inc: &Incoming, id: &str) -> HResult {
    check_query(&inc.query, &FIELDS_QUERY, &[]).map_err(|m| invalid_query(&m))?;
    let user = state.user(id).ok_or_else(user_not_found)?;
    Ok(Reply::mgmt(200, &project(user.to_json(), inc)))
}

/// Auth0's metadata PATCH: root-level keys are merged (deeper levels are
/// replaced), a key set to `null` is removed, and an empty object removes
/// the metadata completely ("patching the metadata itself with an empty
/// object removes the metadata completely", Auth0's metadata docs). Nulls
/// alone never create metadata that did not exist.
fn merge_metadata(target: &mut Option<Map<String, Value>>, patch: Map<String, Value>) {
    if patch.is_empty() {
        *target = None;
        return;
    }
    for (k, v) in patch {
        if v.is_null() {
            if let Some(map) = target.as_mut() {
                map.remove(&k);
            }
        } else {
            target.get_or_insert_with(Map::new).insert(k, v);
        }
    }
}

pub(super) fn patch_user(state: &mut State, inc: &Incoming, id: &str) -> HResult {
    let body = validated(inc, &USER_PATCH)?;
    check_metadata_keys(&body)?;
    let connection_name = state.settings.connection_name.clone();
    let existing = state.user(id).ok_or_else(user_not_found)?;
    if let Some(c) = get_str(&body, "connection") {
        if c != connection_name {
            return Err(connection_not_found());
        }
    }
    if let Some(pw) = get_str(&body, "password") {
        if !state.config.password_ok(pw) {
            return Err(weak_password());
        }
        if state.config.password_no_personal_info
            && password_has_personal_info(pw, &existing.personal_data())
        {
            return Err(personal_info_password());
        }
    }
    let new_email = get_str(&body, "email").map(str::to_lowercase);
    let email_changed = new_email.is_some() && new_email != existing.email;
    if let Some(e) = &new_email {
        if email_changed
            && state.users.iter().any(|u| {
                u.user_id != id
                    && u.connection == existing.connection
                    && u.email.as_deref() == Some(e)
            })
        {
            return Err(user_exists());
        }
    }
    if let Some(name) = get_str(&body, "username") {
        if state.users.iter().any(|u| {
            u.user_id != id
                && u.username
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
        }) {
            return Err(Reply::mgmt_error(
                409,
                "The username provided is in use already.",
                Some("auth0_idp_error"),
            ));
        }
    }

    let user = state.user_mut(id).ok_or_else(user_not_found)?;
    let set = |field: &mut Option<String>, key: &str| {
        if let Some(v) = get_str(&body, key) {
            *field = Some(v.to_string());
        }
    };
    set(&mut user.given_name, "given_name");
    set(&mut user.family_name, "family_name");
    set(&mut user.name, "name");
    set(&mut user.nickname, "nickname");
    set(&mut user.picture, "picture");
    set(&mut user.phone_number, "phone_number");
    set(&mut user.username, "username");
    if let Some(b) = get_bool(&body, "blocked") {
        user.blocked = Some(b);
    }
    if let Some(b) = get_bool(&body, "phone_verified") {
        user.phone_verified = Some(b);
    }
    if email_changed {
        user.email = new_email;
        user.email_verified = false;
    }
    if let Some(b) = get_bool(&body, "email_verified") {
        user.email_verified = b;
    }
    if let Some(m) = get_obj(&body, "user_metadata") {
        merge_metadata(&mut user.user_metadata, m);
    }
    if let Some(m) = get_obj(&body, "app_metadata") {
        merge_metadata(&mut user.app_metadata, m);
    }
    user.updated_at = util::now_rfc3339();
    let out = user.to_json();
    if email_changed && get_bool(&body, "verify_email") == Some(true) {
        state.send_verification_email(id, "email_changed", None);
    }
    Ok(Reply::mgmt(200, &out))
}

/// `DELETE /api/v2/users/{id}`: 204 with an empty body, whether or not the
/// user existed. Auth0 answers 204 for an unknown id too, by design (its
/// maintainers in auth0/node-auth0#451 and #645: the endpoint "doesn't
/// return a 404 on user not found"), so a 404 here would make callers handle
/// an answer the real API never gives. The user's tickets stay in the
/// state, invalid with the reason "user deleted".
pub(super) fn delete_user(state: &mut State, inc: &Incoming, id: &str) -> HResult {
    check_query(&inc.query, &[], &[]).map_err(|m| invalid_query(&m))?;
    state.delete_user(id);
    Ok(Reply::no_content())
}

pub(super) fn users_by_email(state: &State, inc: &Incoming) -> HResult {
    let allowed = [FIELDS_QUERY[0], FIELDS_QUERY[1], ("email", QTy::Str)];
    check_query(&inc.query, &allowed, &["email"]).map_err(|m| invalid_query(&m))?;
    let email = inc.query_param("email").unwrap_or_default();
    let users: Vec<Value> = state
        .users
        .iter()
        .filter(|u| u.email.as_deref() == Some(email))
        .map(|u| project(u.to_json(), inc))
        .collect();
    Ok(Reply::mgmt(200, &Value::Array(users)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_merge() {
        let mut target = Some(
            json!({"a": 1, "b": 2})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let patch = json!({"b": null, "c": 3})
            .as_object()
            .cloned()
            .unwrap_or_default();
        merge_metadata(&mut target, patch);
        assert_eq!(
            Value::Object(target.clone().unwrap_or_default()),
            json!({"a":1,"c":3})
        );
        // An empty object removes the metadata completely.
        merge_metadata(&mut target, Map::new());
        assert_eq!(target, None);
        // Nulls alone don't create metadata.
        let nulls = json!({"x": null}).as_object().cloned().unwrap_or_default();
        merge_metadata(&mut target, nulls);
        assert_eq!(target, None);
    }
}
