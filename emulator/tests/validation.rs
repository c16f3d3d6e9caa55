//! Auth0's validation rules that a second comparison with the references found the emulator
//! missing: the `user-id` format, `per_page`'s minimum, metadata field names, and a
//! password-change ticket's exclusive parameters. Each test cites its evidence.

mod common;

use common::{enc, with_delete_scope, Emu};
use serde_json::{json, Value};

fn err_body(r: &common::Resp) -> Value {
    r.json()
}

/// A user id that is not `provider|id` fails Auth0's `user-id` format check on
/// the path with 400 `invalid_uri`, before any lookup. Evidence:
/// - Auth0's Management API OpenAPI spec (the one auth0.com/docs/api/management/v2
///   is generated from; mirrored in api-evangelist/auth0 openapi/auth0-users-api-openapi.yml)
///   lists `400 Invalid request URI` for GET/PATCH/DELETE /users/{id};
/// - integration tests run against live tenants with node-auth0 expect
///   `deleteUser({id: 'nope'})` and `getUser({id: 'nope'})` to fail with 400
///   "Object didn't pass validation for format user-id: nope";
/// - a public Auth0 clone records the real body for GET /users/{id}:
///   `{"statusCode":400,"error":"Bad Request","message":"Object didn't pass validation for format user-id: 6560cd0f6caaac5b4692f454","errorCode":"invalid_uri"}`.
///
/// The emulator answered 404 (GET, PATCH, roles) and 204 (DELETE).
#[test]
fn malformed_user_id_in_path_is_400_invalid_uri() {
    let emu = Emu::start_with(with_delete_scope);
    let token = emu.token();
    let expected = json!({
        "statusCode": 400,
        "error": "Bad Request",
        "message": "Object didn't pass validation for format user-id: nope",
        "errorCode": "invalid_uri",
    });
    let cases: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/api/v2/users/nope", None),
        (
            "PATCH",
            "/api/v2/users/nope",
            Some(json!({"blocked": true})),
        ),
        ("DELETE", "/api/v2/users/nope", None),
        ("GET", "/api/v2/users/nope/roles", None),
        (
            "POST",
            "/api/v2/users/nope/roles",
            Some(json!({"roles": ["rol_0000000000000000"]})),
        ),
    ];
    for (method, path, body) in cases {
        let r = match body {
            Some(b) => emu.send_json(method, path, Some(&token), &b),
            None => {
                let auth = format!("Bearer {token}");
                emu.request(method, path, &[("Authorization", auth.as_str())], None)
            }
        };
        assert_eq!(r.status, 400, "{method} {path}: {}", r.body);
        assert_eq!(err_body(&r), expected, "{method} {path}");
        assert!(r.header("x-ratelimit-limit").is_some(), "{method} {path}");
    }
    // A well-formed id that does not exist is still the recorded 404 (and the
    // documented 204 for DELETE).
    let r = emu.get(
        &format!("/api/v2/users/{}", enc("auth0|nope")),
        Some(&token),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errorCode"], "inexistent_user");
    let auth = format!("Bearer {token}");
    let r = emu.request(
        "DELETE",
        &format!("/api/v2/users/{}", enc("auth0|nope")),
        &[("Authorization", auth.as_str())],
        None,
    );
    assert_eq!(r.status, 204);
}

/// `user_id` in the ticket and job bodies has `format: user-id` in Auth0's
/// spec (ChangePasswordTicketRequestContent, VerifyEmailTicketRequestContent,
/// CreateVerificationEmailRequestContent; api-evangelist/auth0
/// openapi/auth0-tickets-api-openapi.yml and auth0-jobs-api-openapi.yml), so a
/// bare id is a 400 `invalid_body`, not the 404 "The user does not exist.".
#[test]
fn malformed_user_id_in_ticket_and_job_bodies_is_400_invalid_body() {
    let emu = Emu::start();
    let token = emu.token();
    for path in [
        "/api/v2/tickets/password-change",
        "/api/v2/tickets/email-verification",
        "/api/v2/jobs/verification-email",
    ] {
        let r = emu.post(path, Some(&token), &json!({"user_id": "nope"}));
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let b = r.json();
        assert_eq!(b["errorCode"], "invalid_body", "{path}");
        let msg = b["message"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with(
                "Payload validation error: 'Object didn't pass validation for format user-id: nope' on property user_id"
            ),
            "{path}: {msg}"
        );
    }
    // Well-formed but unknown: still 404 inexistent_user.
    let r = emu.post(
        "/api/v2/tickets/password-change",
        Some(&token),
        &json!({"user_id": "auth0|nope"}),
    );
    assert_eq!(r.status, 404);
}

/// GET /api/v2/roles and GET /api/v2/users/{id}/roles: `per_page` has
/// "Required range: 1 <= x <= 100" (auth0.com/docs/api/management/v2/roles/get-roles;
/// the spec's `minimum: 1, maximum: 100` for both). The emulator took 0 and
/// answered an empty page.
#[test]
fn role_lists_per_page_minimum_is_one() {
    let emu = Emu::start();
    let token = emu.token();
    let user = emu.create_user(&token, "pp@example.com");
    let id = user["user_id"].as_str().unwrap().to_string();
    for path in [
        "/api/v2/roles?per_page=0".to_string(),
        format!("/api/v2/users/{}/roles?per_page=0", enc(&id)),
    ] {
        let r = emu.get(&path, Some(&token));
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(
            r.json(),
            json!({
                "statusCode": 400,
                "error": "Bad Request",
                "message": "Query validation error: 'Value 0 is less than minimum 1' on property per_page.",
                "errorCode": "invalid_query_string",
            }),
            "{path}"
        );
    }
    // 1 and 100 are fine.
    for pp in ["1", "100"] {
        let r = emu.get(&format!("/api/v2/roles?per_page={pp}"), Some(&token));
        assert_eq!(r.status, 200);
    }
}

/// "Field names must not contain the . (dot) or $ (dollar sign) characters"
/// (auth0.com/docs/manage-users/user-accounts/metadata/metadata-fields-data,
/// "Metadata field names > Accepted characters"). The emulator stored them.
/// The wording of Auth0's 400 is not public; the test pins status and errorCode.
#[test]
fn metadata_field_names_may_not_contain_dot_or_dollar() {
    let emu = Emu::start();
    let token = emu.token();
    let base = |extra: Value| {
        let mut b = json!({
            "connection": "Username-Password-Authentication",
            "email": "meta@example.com",
            "password": "Str0ng!Passw0rd",
        });
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for bad in [
        json!({"user_metadata": {"preference.color": "pink"}}),
        json!({"app_metadata": {"$plan": "pro"}}),
        json!({"app_metadata": {"nested": {"a.b": 1}}}),
        json!({"user_metadata": {"list": [{"x$": 1}]}}),
    ] {
        let r = emu.post("/api/v2/users", Some(&token), &base(bad.clone()));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.json()["errorCode"], "invalid_body", "{bad}");
    }
    // Nothing was created by the refused requests.
    let r = emu.get(
        "/api/v2/users-by-email?email=meta%40example.com",
        Some(&token),
    );
    assert_eq!(r.json(), json!([]));

    // The nested form the documentation recommends is fine, and so is PATCH
    // refusing the same keys.
    let ok = emu.post(
        "/api/v2/users",
        Some(&token),
        &base(json!({"user_metadata": {"preference": {"color": "pink"}}})),
    );
    assert_eq!(ok.status, 201, "{}", ok.body);
    let id = ok.json()["user_id"].as_str().unwrap().to_string();
    let r = emu.send_json(
        "PATCH",
        &format!("/api/v2/users/{}", enc(&id)),
        Some(&token),
        &json!({"app_metadata": {"a.b": true}}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["errorCode"], "invalid_body");
}

/// ChangePasswordTicketRequestContent: `email` "Cannot be specified when using
/// user_id", and for `connection_id` "You cannot send user_id when specifying a
/// connection_id" (auth0.com/docs/api/management/v2/tickets/post-password-change;
/// node-auth0 PostPasswordChangeRequest). The emulator silently ignored the
/// extra fields and issued a ticket for `user_id`.
#[test]
fn password_ticket_user_id_excludes_email_and_connection_id() {
    let emu = Emu::start();
    let token = emu.token();
    let user = emu.create_user(&token, "excl@example.com");
    let id = user["user_id"].as_str().unwrap();
    let conn = emu.get("/__emulator/config", None).json()["connection_id"]
        .as_str()
        .unwrap()
        .to_string();
    for body in [
        json!({"user_id": id, "email": "excl@example.com"}),
        json!({"user_id": id, "connection_id": conn}),
        json!({"user_id": id, "email": "excl@example.com", "connection_id": conn}),
    ] {
        let r = emu.post("/api/v2/tickets/password-change", Some(&token), &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["errorCode"], "invalid_body", "{body}");
    }
    // No ticket was issued by the refused requests.
    let tickets = emu
        .get("/__emulator/tickets?email=excl%40example.com", None)
        .json();
    assert_eq!(tickets, json!([]));
    // Each form alone still works.
    let r = emu.post(
        "/api/v2/tickets/password-change",
        Some(&token),
        &json!({"email": "excl@example.com", "connection_id": conn}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Auth0's "Personal Data" password option (Dashboard: Database → Password Policy; the
/// connection's `password_no_personal_info`): off by default; when on, a password holding the
/// user's name, nickname, username, `user_metadata`'s `name`/`first`/`last` or the whole part
/// of the email before the @ is refused with 400 `invalid_password`. Evidence: Auth0's
/// "Password Options in Auth0 Database Connections" ("passwords that contain any part of
/// their personal data … The first part of the user's email will also be checked"), and its
/// support article "Personal Data Password Policy Allows Parts of Email Address" (the string
/// before the @ is checked whole: `john.doe` is refused, `johndoe` and `doe` are not).
#[test]
fn personal_data_password_option() {
    let emu = Emu::start();
    let token = emu.token();
    let create = |email: &str, password: &str, extra: Value| {
        let mut body = json!({
            "connection": "Username-Password-Authentication",
            "email": email,
            "password": password,
        });
        for (k, v) in extra.as_object().expect("an object") {
            body[k] = v.clone();
        }
        emu.post("/api/v2/users", Some(&token), &body)
    };
    // Off by default: the local part in the password is accepted.
    assert_eq!(
        emu.get("/__emulator/config", None).json()["password_no_personal_info"],
        json!(false)
    );
    assert_eq!(
        create("john.doe@example.com", "Xy1!john.doe-Q", json!({})).status,
        201
    );

    assert_eq!(
        emu.config(json!({"password_no_personal_info": true}))
            .status,
        200
    );
    let refused = json!({
        "statusCode": 400,
        "error": "Bad Request",
        "message": "PasswordNoUserInfoError: Password contains user information",
        "errorCode": "invalid_password",
    });
    for (email, password, extra) in [
        ("jane.roe@example.com", "Xy1!JANE.ROE-Q", json!({})),
        (
            "ann@example.com",
            "Xy1!Stripes-Q9",
            json!({"name": "stripes"}),
        ),
        (
            "rob@example.com",
            "Xy1!Bobby-Q9z",
            json!({"nickname": "bobby"}),
        ),
        (
            "cy@example.com",
            "Xy1!Madame-Q9",
            json!({"user_metadata": {"last": "madame"}}),
        ),
    ] {
        let r = create(email, password, extra);
        assert_eq!(r.status, 400, "{email}: {}", r.body);
        assert_eq!(err_body(&r), refused, "{email}");
    }
    // Parts of the local part are not checked, nor is a given name.
    assert_eq!(
        create("ed.doe@example.com", "Xy1!eddoe-Q9z", json!({})).status,
        201
    );
    assert_eq!(
        create(
            "fay@example.com",
            "Xy1!Winifred-Q",
            json!({"given_name": "winifred"})
        )
        .status,
        201
    );
}

/// The Flexible Password Policy's settings the emulator can apply (Auth0's "Configure Flexible
/// Password Policy for Database Connections"; the connection's `password_options.complexity`
/// with `min_length` 1 to 72 and `sequential_characters` `allow` or `block`): a longer minimum
/// (`password_min_length`) and sequences blocked (`password_block_sequential`), both refused
/// as too weak.
#[test]
fn flexible_policy_minimum_length_and_sequences() {
    let emu = Emu::start();
    let token = emu.token();
    let create = |email: &str, password: &str| {
        emu.post(
            "/api/v2/users",
            Some(&token),
            &json!({"connection": "Username-Password-Authentication", "email": email, "password": password}),
        )
    };
    let cfg = emu.get("/__emulator/config", None).json();
    assert_eq!(cfg["password_min_length"], json!(10));
    assert_eq!(cfg["password_block_sequential"], json!(false));
    assert_eq!(create("seq1@example.com", "xB3!abc9!qZ").status, 201);

    assert_eq!(
        emu.config(json!({"password_min_length": 12, "password_block_sequential": true}))
            .status,
        200
    );
    for (email, password) in [
        ("short@example.com", "xB3!ab!c9qZ"),
        ("seq2@example.com", "xB3!k321!qZw"),
    ] {
        let r = create(email, password);
        assert_eq!(r.status, 400, "{email}: {}", r.body);
        assert_eq!(
            err_body(&r)["message"],
            json!("PasswordStrengthError: Password is too weak")
        );
    }
    assert_eq!(create("ok@example.com", "xB3!ab!c9qZw").status, 201);
    for bad in [
        json!({"password_min_length": 0}),
        json!({"password_min_length": 129}),
    ] {
        assert_eq!(
            emu.post("/__emulator/config", None, &bad).status,
            400,
            "{bad}"
        );
    }
}
