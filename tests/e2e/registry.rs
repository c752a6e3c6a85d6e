//! walrelay's Schema Registry client (`walrelay::encode::registry`) against the test stand-in of
//! Confluent's Schema Registry API (`support::registry::TestSchemaRegistry`), and the stand-in's
//! own API shapes. Compatibility expectations follow the Avro specification's schema resolution:
//! a reader's field that the writer lacks needs a default; a writer's field the reader lacks is
//! skipped; int may be read as long (promotion), long not as int.
use std::time::Duration;

use serde_json::{json, Value};
use walrelay::encode::registry::{
    RegistryAuth, RegistryError, RegistrySettings, SchemaRegistry, CONTENT_TYPE,
};

use crate::support::registry::{TestAuth, TestSchemaRegistry};

fn client(server: &TestSchemaRegistry, auth: RegistryAuth, auto_register: bool) -> SchemaRegistry {
    let mut settings = RegistrySettings::new(vec![server.url()]);
    settings.auth = auth;
    settings.auto_register = auto_register;
    settings.timeout = Duration::from_secs(10);
    SchemaRegistry::new(settings).expect("registry settings")
}

/// A Debezium-shaped value schema: `before` defines the row record, `after` refers to it by name.
fn envelope(fields: Value) -> String {
    json!({
        "type": "record", "name": "Envelope", "namespace": "pg.public.products",
        "fields": [
            {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": fields}], "default": null},
            {"name": "after", "type": ["null", "Value"], "default": null},
            {"name": "op", "type": "string"},
            {"name": "ts_ms", "type": ["null", "long"], "default": null}
        ],
        "connect.name": "pg.public.products.Envelope", "connect.version": 2
    })
    .to_string()
}

fn row_v1() -> Value {
    json!([
        {"name": "id", "type": "int"},
        {"name": "name", "type": "string"}
    ])
}

fn record(name: &str, fields: Value) -> String {
    json!({"type": "record", "name": name, "namespace": "t", "fields": fields}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_client_registers_caches_and_fetches_schemas() {
    let server = TestSchemaRegistry::start();
    let registry = client(&server, RegistryAuth::None, true);
    let subject = "pg.public.products-value";
    let path = "/subjects/pg.public.products-value/versions";
    let schema = envelope(row_v1());

    let id = registry.id_for(subject, &schema).await.expect("register");
    assert_eq!(id, 1, "the first schema of a fresh registry");
    // What went over the wire: Confluent's content type, `{"schema": …}` without schemaType.
    let sent = server.requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("POST", path)
    );
    assert_eq!(sent[0].content_type.as_deref(), Some(CONTENT_TYPE));
    let body: Value = serde_json::from_str(&sent[0].body).expect("JSON body");
    assert_eq!(body, json!({ "schema": schema }), "no schemaType for Avro");

    // The same schema again: served from the cache, no request.
    assert_eq!(registry.id_for(subject, &schema).await.expect("cached"), id);
    assert_eq!(server.count("POST", path), 1, "{:?}", server.requests());
    // Its text is known from registering: no GET either.
    assert_eq!(registry.schema_by_id(id).await.expect("by id"), schema);
    assert_eq!(server.requests().len(), 1);

    // Another process (a fresh client) registering it again gets the same id from the server.
    let other = client(&server, RegistryAuth::None, true);
    assert_eq!(other.id_for(subject, &schema).await.expect("again"), id);
    assert_eq!(server.count("POST", path), 2);
    // A fresh client fetches by id once, and gets the schema back (normalized JSON).
    let fresh = client(&server, RegistryAuth::None, true);
    let fetched = fresh.schema_by_id(id).await.expect("fetch");
    assert_eq!(
        serde_json::from_str::<Value>(&fetched).expect("schema JSON"),
        serde_json::from_str::<Value>(&schema).expect("schema JSON")
    );
    fresh.schema_by_id(id).await.expect("cached fetch");
    assert_eq!(server.count("GET", "/schemas/ids/1"), 1);

    // The same schema under another subject keeps its global id; a new schema gets the next.
    assert_eq!(
        registry
            .id_for("other-value", &schema)
            .await
            .expect("other"),
        id
    );
    let key = record("Key", json!([{"name": "id", "type": "int"}]));
    assert_eq!(
        registry
            .id_for("pg.public.products-key", &key)
            .await
            .expect("key"),
        2
    );

    // Subject names are one escaped path segment, decoded by the server.
    let odd = "we/ird name?#%";
    assert_eq!(registry.id_for(odd, &key).await.expect("odd subject"), 2);
    assert_eq!(
        server.count("POST", "/subjects/we%2Fird%20name%3F%23%25/versions"),
        1,
        "{:?}",
        server.requests()
    );
    assert!(server.subjects().contains(&odd.to_string()));

    // An unknown id is a clear, permanent error.
    let e = fresh.schema_by_id(99).await.expect_err("no such id");
    assert!(
        matches!(e, RegistryError::UnknownId { id: 99, .. }),
        "{e:?}"
    );
    assert!(!e.is_transient());
    let text = e.to_string();
    assert!(
        text.contains("Schema 99 not found") && text.contains("40403"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_client_looks_up_without_auto_register() {
    let server = TestSchemaRegistry::start();
    let lookup = client(&server, RegistryAuth::None, false);
    let subject = "inv.public.items-value";
    let schema = envelope(row_v1());

    // Nothing registered: the subject is unknown, and the error says how to fix it.
    let e = lookup
        .id_for(subject, &schema)
        .await
        .expect_err("not registered");
    assert!(matches!(e, RegistryError::NotRegistered { .. }), "{e:?}");
    assert!(!e.is_transient());
    let text = e.to_string();
    for part in [
        subject,
        "HTTP 404, error_code 40401",
        "Subject 'inv.public.items-value' not found.",
        "auto_register",
    ] {
        assert!(text.contains(part), "{part:?} missing from {text}");
    }
    assert_eq!(
        server.count("POST", "/subjects/inv.public.items-value"),
        1,
        "a lookup, not a registration: {:?}",
        server.requests()
    );
    assert!(server.subjects().is_empty(), "lookups register nothing");

    // Registered by someone else: the lookup finds its id, once.
    let id = client(&server, RegistryAuth::None, true)
        .id_for(subject, &schema)
        .await
        .expect("register");
    let lookup = client(&server, RegistryAuth::None, false);
    assert_eq!(lookup.id_for(subject, &schema).await.expect("lookup"), id);
    assert_eq!(lookup.id_for(subject, &schema).await.expect("cached"), id);
    assert_eq!(server.count("POST", "/subjects/inv.public.items-value"), 2);

    // A schema the subject does not have: 40403.
    let other = envelope(json!([{"name": "id", "type": "long"}]));
    let e = lookup
        .id_for(subject, &other)
        .await
        .expect_err("unknown schema");
    assert!(matches!(e, RegistryError::NotRegistered { .. }), "{e:?}");
    assert!(e.to_string().contains("error_code 40403"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_client_basic_and_bearer_auth() {
    let schema = record("R", json!([{"name": "a", "type": "string"}]));
    let basic_server = TestSchemaRegistry::start_with(TestAuth::Basic {
        username: "relay".into(),
        password: "s3cret".into(),
    });
    let good = RegistryAuth::Basic {
        username: "relay".into(),
        password: "s3cret".into(),
    };
    assert_eq!(
        client(&basic_server, good, true)
            .id_for("a-value", &schema)
            .await
            .expect("accepted"),
        1
    );
    let wrong = RegistryAuth::Basic {
        username: "relay".into(),
        password: "wrong".into(),
    };
    for (auth, hint) in [
        (wrong, "check the basic_auth username and password"),
        (RegistryAuth::None, "no credentials were sent"),
    ] {
        let e = client(&basic_server, auth, true)
            .id_for("a-value", &schema)
            .await
            .expect_err("refused");
        assert!(
            matches!(e, RegistryError::Auth { status: 401, .. }),
            "{e:?}"
        );
        assert!(!e.is_transient());
        let text = e.to_string();
        for part in [
            basic_server.url().as_str(),
            "HTTP 401, error_code 401",
            "Unauthorized",
            "subject `a-value`",
            hint,
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
        assert!(!text.contains("wrong"), "no secret in errors: {text}");
    }

    let bearer_server = TestSchemaRegistry::start_with(TestAuth::Bearer {
        token: "tok-123".into(),
    });
    let token = |t: &str| RegistryAuth::Bearer { token: t.into() };
    let accepted = client(&bearer_server, token("tok-123"), true);
    let id = accepted.id_for("b-value", &schema).await.expect("accepted");
    assert_eq!(id, 1);
    let e = client(&bearer_server, token("tok-999"), true)
        .schema_by_id(id)
        .await
        .expect_err("refused");
    assert!(
        matches!(e, RegistryError::Auth { status: 401, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("check the bearer token") && text.contains("schema with id 1"),
        "{text}"
    );
    assert!(!text.contains("tok-999"), "no secret in errors: {text}");
    // Basic credentials where a bearer token is wanted are refused too.
    let e = client(
        &bearer_server,
        RegistryAuth::Basic {
            username: "u".into(),
            password: "tok-123".into(),
        },
        true,
    )
    .id_for("b-value", &schema)
    .await
    .expect_err("refused");
    assert!(
        matches!(e, RegistryError::Auth { status: 401, .. }),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_refuses_incompatible_changes_with_the_registrys_409() {
    let server = TestSchemaRegistry::start();
    let registry = client(&server, RegistryAuth::None, true);
    let subject = "shop.public.products-value";
    let v1 = record(
        "Value",
        json!([{"name": "id", "type": "int"}, {"name": "name", "type": "string"}]),
    );
    assert_eq!(registry.id_for(subject, &v1).await.expect("v1"), 1);

    // BACKWARD (the default): a new required field without default cannot be read from v1 data.
    let required = record(
        "Value",
        json!([{"name": "id", "type": "int"}, {"name": "name", "type": "string"},
               {"name": "weight", "type": "double"}]),
    );
    let e = registry
        .id_for(subject, &required)
        .await
        .expect_err("incompatible");
    assert!(matches!(e, RegistryError::Incompatible { .. }), "{e:?}");
    assert!(!e.is_transient(), "a refusal is not retried");
    let text = e.to_string();
    for part in [
        "subject `shop.public.products-value`",
        server.url().as_str(),
        "HTTP 409, error_code 409",
        "Schema being registered is incompatible with an earlier schema for subject \
         \"shop.public.products-value\"",
        "READER_FIELD_MISSING_DEFAULT_VALUE",
        "'weight'",
        "compatibility: 'BACKWARD'",
        "PUT /config/shop.public.products-value",
    ] {
        assert!(text.contains(part), "{part:?} missing from {text}");
    }
    // The server's own body, byte for byte as the registry shapes it.
    let (status, body) = server.call(
        "POST",
        "/subjects/shop.public.products-value/versions",
        Some(&json!({ "schema": required }).to_string()),
    );
    assert_eq!(status, 409);
    assert_eq!(body["error_code"], 409);
    assert!(
        body["message"].as_str().expect("message").starts_with(
            "Schema being registered is incompatible with an earlier schema for subject \
             \"shop.public.products-value\", details: [{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE'"
        ),
        "{body}"
    );

    // Compatible changes under BACKWARD: a field with a default; dropping a field; int → long.
    let with_default = record(
        "Value",
        json!([{"name": "id", "type": "int"}, {"name": "name", "type": "string"},
               {"name": "weight", "type": "double", "default": 0.0}]),
    );
    assert_eq!(
        registry.id_for(subject, &with_default).await.expect("v2"),
        2
    );
    let dropped = record(
        "Value",
        json!([{"name": "id", "type": "int"}, {"name": "weight", "type": "double", "default": 0.0}]),
    );
    assert_eq!(registry.id_for(subject, &dropped).await.expect("v3"), 3);
    let widened = record(
        "Value",
        json!([{"name": "id", "type": "long"}, {"name": "weight", "type": "double", "default": 0.0}]),
    );
    assert_eq!(registry.id_for(subject, &widened).await.expect("v4"), 4);
    // long → int narrows: refused, the type mismatch named. (Not v3's text again: a schema the
    // subject already has returns its id without any check.)
    assert_eq!(
        registry.id_for(subject, &dropped).await.expect("v3 again"),
        3
    );
    let narrowed = record(
        "Value",
        json!([{"name": "id", "type": "int"}, {"name": "weight", "type": "double", "default": 0.0},
               {"name": "note", "type": "string", "default": ""}]),
    );
    let e = registry
        .id_for(subject, &narrowed)
        .await
        .expect_err("narrowing");
    assert!(matches!(e, RegistryError::Incompatible { .. }), "{e:?}");
    assert!(e.to_string().contains("TYPE_MISMATCH"), "{e}");
    let (status, versions) =
        server.call("GET", "/subjects/shop.public.products-value/versions", None);
    assert_eq!((status, versions), (200, json!([1, 2, 3, 4])));

    // The fix the error names: relax the subject's level, and the same change goes through.
    let (status, body) = server.call(
        "PUT",
        "/config/shop.public.products-value",
        Some(r#"{"compatibility":"NONE"}"#),
    );
    assert_eq!((status, body), (200, json!({"compatibility": "NONE"})));
    let fresh = client(&server, RegistryAuth::None, true);
    assert_eq!(fresh.id_for(subject, &narrowed).await.expect("NONE"), 5);

    // FORWARD is the reverse: old readers must read new data. A new required field is fine
    // (old readers skip it); dropping a field without default is not.
    let forward = "fwd-value";
    let (status, _) = server.call(
        "PUT",
        "/config/fwd-value",
        Some(r#"{"compatibility":"FORWARD"}"#),
    );
    assert_eq!(status, 200);
    assert_eq!(fresh.id_for(forward, &v1).await.expect("fwd v1"), 1);
    assert_eq!(
        fresh.id_for(forward, &required).await.expect("fwd v2"),
        6,
        "a new required field is forward compatible"
    );
    let e = fresh
        .id_for(forward, &dropped)
        .await
        .expect_err("dropping `name` breaks old readers");
    assert!(matches!(e, RegistryError::Incompatible { .. }), "{e:?}");
    assert!(e.to_string().contains("'name'"), "{e}");

    // A malformed schema: 422 / 42201, not a compatibility problem.
    let e = fresh
        .id_for(forward, r#"{"type":"record","name":"X"}"#)
        .await
        .expect_err("malformed");
    assert!(matches!(e, RegistryError::InvalidSchema { .. }), "{e:?}");
    assert!(e.to_string().contains("error_code 42201"), "{e}");
}

/// The stand-in's answers have the registry's shapes (Confluent's API reference: subjects,
/// versions, config, schemas by id, and the error codes).
#[test]
fn test_registry_follows_the_registry_api() {
    let server = TestSchemaRegistry::start();
    let schema = record("R", json!([{"name": "a", "type": "string"}]));
    let register = json!({ "schema": schema }).to_string();
    assert_eq!(server.call("GET", "/subjects", None), (200, json!([])));
    assert_eq!(
        server.call("POST", "/subjects/s-value/versions", Some(&register)),
        (200, json!({"id": 1}))
    );
    assert_eq!(
        server.call("GET", "/subjects", None),
        (200, json!(["s-value"]))
    );
    let latest = json!({"subject": "s-value", "version": 1, "id": 1, "schema": schema});
    assert_eq!(
        server.call("GET", "/subjects/s-value/versions/latest", None),
        (200, latest.clone())
    );
    assert_eq!(
        server.call("GET", "/subjects/s-value/versions/1", None),
        (200, latest.clone())
    );
    assert_eq!(
        server.call("POST", "/subjects/s-value", Some(&register)),
        (200, latest)
    );
    assert_eq!(
        server.call("GET", "/schemas/ids/1", None),
        (200, json!({ "schema": schema }))
    );
    assert_eq!(
        server.call("GET", "/subjects/s-value/versions/2", None),
        (
            404,
            json!({"error_code": 40402, "message": "Version 2 not found."})
        )
    );
    assert_eq!(
        server.call("GET", "/subjects/nope/versions", None),
        (
            404,
            json!({"error_code": 40401, "message": "Subject 'nope' not found."})
        )
    );
    assert_eq!(
        server.call("GET", "/schemas/ids/7", None),
        (
            404,
            json!({"error_code": 40403, "message": "Schema 7 not found"})
        )
    );
    let (status, body) = server.call("GET", "/subjects/s-value/versions/x", None);
    assert_eq!((status, &body["error_code"]), (422, &json!(42202)));
    assert_eq!(
        server.call("GET", "/config", None),
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(
        server.call("PUT", "/config", Some(r#"{"compatibility":"FULL"}"#)),
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        server.call("GET", "/config", None),
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    let (status, body) = server.call("GET", "/config/s-value", None);
    assert_eq!((status, &body["error_code"]), (404, &json!(40408)));
    assert_eq!(
        server.call("GET", "/config/s-value?defaultToGlobal=true", None),
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    let (status, body) = server.call(
        "PUT",
        "/config/s-value",
        Some(r#"{"compatibility":"SOME"}"#),
    );
    assert_eq!((status, &body["error_code"]), (422, &json!(42203)));
    let (status, body) = server.call(
        "POST",
        "/subjects/s-value/versions",
        Some(r#"{"schema":"{\"type\":\"nope\"}"}"#),
    );
    assert_eq!((status, &body["error_code"]), (422, &json!(42201)));

    let secured = TestSchemaRegistry::start_with(TestAuth::Bearer { token: "t".into() });
    assert_eq!(secured.call("GET", "/subjects", None), (200, json!([])));
    let unauthorized = (401, json!({"error_code": 401, "message": "Unauthorized"}));
    assert_eq!(
        secured.call_with_authorization("GET", "/subjects", None, None),
        unauthorized
    );
    assert_eq!(
        secured.call_with_authorization("GET", "/subjects", None, Some("Bearer x")),
        unauthorized
    );
}
