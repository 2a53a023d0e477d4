//! Checks the webCRM sandbox and DTOs against webCRM's own Swagger file: every route and
//! method the sandbox serves, and every property it emits or accepts, must be in the spec.
//!
//! The reference directory comes from `WCS_REFERENCE_DIR`, else `../shared/reference`
//! beside the crate; without either the tests print why and pass (CI sets the variable).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{json, Map, Value};
use wcs::clients::webcrm::{
    FieldKind, FieldSpec, Hook, HookEntity, LinkedDataItem, LinkedSetup, Opportunity, Organisation,
    Person, QuotationLine, QuotationLineUpdate, TokenResponse, User, WebcrmClient, WebcrmEntity,
};
use wcs::sandbox::webcrm::{
    RunningWebcrmSandbox, SandboxEntity, WebcrmSandbox, WebcrmSandboxOptions, ROUTES,
    UNROUTED_HEADER,
};

const SPEC_FILE: &str = "webcrm/webcrm-api-v1-swagger-2019-09-30.json";

fn load_spec() -> Option<Value> {
    let explicit = std::env::var_os("WCS_REFERENCE_DIR").map(PathBuf::from);
    let dir = explicit
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference"));
    let path = dir.join(SPEC_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).expect("the Swagger file is JSON")),
        // A directory named explicitly (as CI does) must contain the spec.
        Err(e) if explicit.is_some() => {
            panic!(
                "WCS_REFERENCE_DIR is set but {} is unreadable: {e}",
                path.display()
            )
        }
        Err(e) => {
            eprintln!(
                "skipping webCRM conformance: cannot read {} ({e}); set WCS_REFERENCE_DIR to run it",
                path.display()
            );
            None
        }
    }
}

fn spec_methods(spec: &Value, path: &str) -> BTreeSet<String> {
    spec["paths"][path]
        .as_object()
        .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
        .unwrap_or_default()
}

fn definition<'a>(spec: &'a Value, name: &str) -> &'a Map<String, Value> {
    spec["definitions"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("definition {name} not in the spec"))
}

fn kind_in_spec(p: &Value) -> Option<FieldKind> {
    Some(match (p["type"].as_str()?, p["format"].as_str()) {
        ("string", Some("date-time")) => FieldKind::DateTime,
        ("string", _) => FieldKind::Text,
        ("integer", Some("int64")) => FieldKind::Int64,
        ("integer", _) => FieldKind::Int32,
        ("number", _) => FieldKind::Double,
        ("boolean", _) => FieldKind::Bool,
        _ => return None,
    })
}

fn check_fields<T: WebcrmEntity>(spec: &Value, problems: &mut Vec<String>) {
    let def = definition(spec, T::DEFINITION);
    let ours: BTreeSet<&str> = T::fields().iter().map(|f| f.name).collect();
    for f in T::fields() {
        match def.get(f.name) {
            None => problems.push(format!("{}: {} is not in the spec", T::DEFINITION, f.name)),
            Some(p) => {
                if kind_in_spec(p) != Some(f.kind) {
                    problems.push(format!("{}: {} has another type", T::DEFINITION, f.name));
                }
                let max = p["maxLength"].as_u64().and_then(|m| u32::try_from(m).ok());
                if max != f.max_length {
                    problems.push(format!("{}: {} maxLength differs", T::DEFINITION, f.name));
                }
            }
        }
    }
    for name in def.keys() {
        if !ours.contains(name.as_str()) {
            problems.push(format!("{}: spec property {name} missing", T::DEFINITION));
        }
    }
    if !def.contains_key(T::ID_FIELD) {
        problems.push(format!("{}: id {} not in spec", T::DEFINITION, T::ID_FIELD));
    }
}

#[test]
fn dto_fields_match_the_spec_definitions() {
    let Some(spec) = load_spec() else { return };
    let mut problems = Vec::new();
    check_fields::<Organisation>(&spec, &mut problems);
    check_fields::<Person>(&spec, &mut problems);
    check_fields::<User>(&spec, &mut problems);
    check_fields::<Opportunity>(&spec, &mut problems);
    check_fields::<QuotationLine>(&spec, &mut problems);
    check_fields::<QuotationLineUpdate>(&spec, &mut problems);
    check_fields::<LinkedDataItem>(&spec, &mut problems);
    check_fields::<LinkedSetup>(&spec, &mut problems);
    for entity in HookEntity::ALL {
        let def = definition(&spec, entity.hook_definition());
        let ours: BTreeSet<String> = Hook::FIELDS.iter().map(|s| (*s).to_owned()).collect();
        let theirs: BTreeSet<String> = def.keys().cloned().collect();
        if ours != theirs {
            problems.push(format!(
                "{}: {ours:?} != {theirs:?}",
                entity.hook_definition()
            ));
        }
        let filters: BTreeSet<&str> = def["Filter"]["items"]["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let allowed: BTreeSet<&str> = entity.allowed_filters().iter().copied().collect();
        if filters != allowed {
            problems.push(format!("{}: filter enum differs", entity.hook_definition()));
        }
    }
    let token: BTreeSet<&str> = definition(&spec, "TokenResponseDto")
        .keys()
        .map(String::as_str)
        .collect();
    if token != TokenResponse::FIELDS.iter().copied().collect() {
        problems.push("TokenResponseDto differs".into());
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_sandbox_route_and_method_is_in_the_spec() {
    let Some(spec) = load_spec() else { return };
    let missing: Vec<_> = ROUTES
        .iter()
        .filter(|(m, p)| !spec_methods(&spec, p).contains(*m))
        .collect();
    assert!(missing.is_empty(), "not in the spec: {missing:?}");
    let queries = &spec["paths"]["/Queries"]["get"]["parameters"];
    let names: BTreeSet<&str> = queries
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    for param in ["script", "Page", "Size", "formatCustomFields"] {
        assert!(names.contains(param), "/Queries has no {param}");
    }
    let login = &spec["paths"]["/Auth/ApiLogin"]["post"]["parameters"][0];
    assert_eq!(login["name"], "authCode");
    assert_eq!(login["in"], "formData");
}

async fn start() -> (RunningWebcrmSandbox, String) {
    let sandbox = WebcrmSandbox::start(WebcrmSandboxOptions::default())
        .await
        .expect("starts");
    let login: Value = reqwest::Client::new()
        .post(format!("{}/Auth/ApiLogin", sandbox.base_url()))
        .form(&[("authCode", sandbox.api_token())])
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let keys: BTreeSet<&str> = login
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        keys.iter().all(|k| TokenResponse::FIELDS.contains(k)),
        "{keys:?}"
    );
    let token = login["AccessToken"].as_str().expect("token").to_owned();
    (sandbox, token)
}

fn concrete(template: &str) -> String {
    template.replace("{id}", "1")
}

#[tokio::test]
async fn every_declared_route_is_served_and_undeclared_spec_routes_are_not() {
    let Some(spec) = load_spec() else { return };
    let (sandbox, token) = start().await;
    let http = reqwest::Client::new();
    for (method, path) in ROUTES {
        let resp = http
            .request(
                method.parse().expect("method"),
                format!("{}{}", sandbox.base_url(), concrete(path)),
            )
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("sent");
        assert_ne!(resp.status(), 405, "{method} {path}");
        assert!(
            !resp.headers().contains_key(UNROUTED_HEADER),
            "{method} {path} unrouted"
        );
    }
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let paths = spec["paths"].as_object().expect("paths");
    for (path, ops) in paths {
        let relevant = [
            "/Organisations",
            "/Persons",
            "/Users",
            "/Opportunities",
            "/QuotationLines",
        ]
        .iter()
        .any(|p| path.starts_with(p))
            && !path.starts_with("/PersonsB2C");
        if !relevant {
            continue;
        }
        for method in ops.as_object().expect("ops").keys() {
            let method = method.to_ascii_uppercase();
            if served.contains(&(method.clone(), path.clone())) {
                continue;
            }
            let concrete_path = path
                .replace("{id}", "1")
                .replace("{organisationId}", "1")
                .replace("{responsibleId}", "1")
                .replace("{pipelineLevel}", "1")
                .replace("{startDate}", "2020-01-01")
                .replace("{endDate}", "2020-02-01");
            let resp = http
                .request(
                    method.parse().expect("method"),
                    format!("{}{concrete_path}", sandbox.base_url()),
                )
                .bearer_auth(&token)
                .send()
                .await
                .expect("sent");
            let unrouted = resp.status() == 405 || resp.headers().contains_key(UNROUTED_HEADER);
            assert!(
                unrouted,
                "{method} {path} is served but not declared in ROUTES"
            );
        }
    }
}

fn assert_conforms(
    def_name: &str,
    def: &Map<String, Value>,
    object: &Map<String, Value>,
    extra_ok: &[&str],
) {
    for (key, value) in object {
        if extra_ok.contains(&key.as_str()) {
            continue;
        }
        let Some(p) = def.get(key) else {
            panic!("{def_name}: the sandbox emits {key}, which the spec does not have");
        };
        let ok = match (p["type"].as_str(), value) {
            (_, Value::Null) => true,
            (Some("string"), Value::String(_)) => true,
            (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Some("number"), Value::Number(_)) => true,
            (Some("boolean"), Value::Bool(_)) => true,
            (Some("array"), Value::Array(_)) => true,
            _ => false,
        };
        assert!(
            ok,
            "{def_name}: {key} = {value} does not have the spec's type"
        );
    }
}

async fn get_json(http: &reqwest::Client, url: String, token: &str) -> Value {
    let resp = http.get(url).bearer_auth(token).send().await.expect("sent");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

#[tokio::test]
async fn every_property_the_sandbox_emits_or_keeps_is_in_the_spec() {
    let Some(spec) = load_spec() else { return };
    let (sandbox, token) = start().await;
    let client = WebcrmClient::new(sandbox.client_config()).expect("client");
    let state = sandbox.state();
    let http = reqwest::Client::new();
    let base = sandbox.base_url();

    // Write every writable property (and a bogus one) through the API.
    fn full_body(fields: &[FieldSpec], skip: &[&str]) -> Value {
        let mut m = Map::new();
        for f in fields {
            if skip.contains(&f.name) {
                continue;
            }
            let v = match f.kind {
                FieldKind::Text => json!("x"),
                FieldKind::Int32 | FieldKind::Int64 => json!(0),
                FieldKind::Double => json!(1.5),
                FieldKind::Bool => json!(true),
                FieldKind::DateTime => json!("2020-01-02T03:04:05Z"),
            };
            m.insert(f.name.to_owned(), v);
        }
        m.insert("NotInTheSpec".into(), json!("dropped"));
        Value::Object(m)
    }
    let org = state
        .ui_create(
            SandboxEntity::Organisation,
            json!({"OrganisationName": "o"}),
        )
        .expect("org");
    let opp = state
        .ui_create(
            SandboxEntity::Opportunity,
            json!({"OpportunityOrganisationId": org}),
        )
        .expect("opp");
    for entity in SandboxEntity::ALL {
        let mut body = full_body(entity.write_fields(), &[]);
        let obj = body.as_object_mut().expect("object");
        match entity {
            SandboxEntity::Person => {
                obj.insert("PersonOrganisationId".into(), json!(org));
            }
            SandboxEntity::Opportunity => {
                obj.insert("OpportunityOrganisationId".into(), json!(org));
            }
            SandboxEntity::QuotationLine => {
                obj.insert("QuotationLineOpportunityId".into(), json!(opp));
            }
            _ => {}
        }
        let resp = http
            .post(format!("{base}{}", entity.path()))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(
            resp.status(),
            200,
            "{entity:?}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    state
        .ui_create(SandboxEntity::User, json!({"UserName": "u"}))
        .expect("user");

    let defs = [
        (SandboxEntity::Organisation, "OrganisationDto"),
        (SandboxEntity::Person, "PersonDto"),
        (SandboxEntity::User, "UserDto"),
        (SandboxEntity::Opportunity, "OpportunityDto"),
        (SandboxEntity::QuotationLine, "QuotationLineDto"),
        (SandboxEntity::LinkedData, "QuotationLineLinkedDataItemDto"),
    ];
    for (entity, def_name) in defs {
        let def = definition(&spec, def_name);
        let list = if entity == SandboxEntity::LinkedData {
            get_json(&http, format!("{base}{}", entity.path()), &token).await
        } else {
            get_json(
                &http,
                format!("{base}{}?Page=1&Size=100", entity.path()),
                &token,
            )
            .await
        };
        let items = list.as_array().expect("array");
        assert!(!items.is_empty(), "{entity:?}");
        for item in items {
            let obj = item.as_object().expect("object");
            assert!(!obj.contains_key("NotInTheSpec"));
            assert_conforms(def_name, def, obj, &[]);
            let id = obj[entity.id_field()].as_i64().expect("id");
            let one = get_json(&http, format!("{base}{}/{id}", entity.path()), &token).await;
            assert_conforms(def_name, def, one.as_object().expect("object"), &[]);
        }
        if let Some(table) = entity.table() {
            let rows = get_json(
                &http,
                format!("{base}/Queries?script=SELECT%20*%20FROM%20{table}&Page=1&Size=10"),
                &token,
            )
            .await;
            for row in rows.as_array().expect("rows") {
                // RowNumber is a raw column webCRM's query results are known to carry.
                assert_conforms(def_name, def, row.as_object().expect("row"), &["RowNumber"]);
            }
        }
    }
    let setup = get_json(&http, format!("{base}/QuotationLines/LinkedSetup"), &token).await;
    assert_conforms(
        "QuotationLineLinkedSetupDto",
        definition(&spec, "QuotationLineLinkedSetupDto"),
        setup.as_object().expect("object"),
        &[],
    );
    let users = get_json(
        &http,
        format!("{base}/Users/AllActive?Page=1&Size=10"),
        &token,
    )
    .await;
    for u in users.as_array().expect("array") {
        assert_conforms(
            "UserDto",
            definition(&spec, "UserDto"),
            u.as_object().expect("o"),
            &[],
        );
    }

    for entity in HookEntity::ALL {
        let hook = json!({"Id": 0, "TargetUrl": "https://example.com/h", "IsEnabled": true,
                          "Filter": ["All"], "EventType": "Create", "Bogus": 1});
        let resp = http
            .post(format!("{base}/{}/Hooks", entity.collection()))
            .bearer_auth(&token)
            .json(&hook)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 200);
        let hooks = get_json(
            &http,
            format!("{base}/{}/Hooks?Page=1&Size=10", entity.collection()),
            &token,
        )
        .await;
        for h in hooks.as_array().expect("array") {
            assert_conforms(
                entity.hook_definition(),
                definition(&spec, entity.hook_definition()),
                h.as_object().expect("o"),
                &[],
            );
        }
    }
    drop(client);
}
