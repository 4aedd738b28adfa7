use crate::helpers::*;
use actix_web::http::StatusCode;
use scimflow_ingest_api::ApiConfig;
use serde_json::json;

async fn users(app: &TestApp, names: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for name in names {
        ids.push(app.create_user(name).await.id());
    }
    ids
}

#[actix_web::test]
async fn list_without_filter_returns_every_user_in_id_order() {
    let app = spawn_app();
    let mut ids = users(&app, &["a", "b", "c"]).await;
    ids.sort();
    let response = app.call("GET", "/Users", None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:ListResponse");
    assert_eq!(response.body["totalResults"], 3);
    assert_eq!(response.body["startIndex"], 1);
    assert_eq!(response.body["itemsPerPage"], 3);
    assert_eq!(resource_ids(&response.body), ids);
    assert_eq!(response.header("content-type"), Some("application/scim+json"));
}

#[actix_web::test]
async fn filter_on_user_name_is_case_insensitive_o1() {
    let app = spawn_app();
    let ids = users(&app, &["BJensen@example.com", "other"]).await;
    let filter = filter_query("userName eq \"bjensen@EXAMPLE.com\"");
    let response = app.call("GET", &format!("/Users?{filter}&startIndex=1&count=100"), None).await;
    assert_eq!(response.body["totalResults"], 1);
    assert_eq!(resource_ids(&response.body), vec![ids[0].clone()]);
    // Operators and attribute names are case-insensitive too.
    let filter = filter_query("USERNAME Eq \"bjensen@example.com\"");
    let response = app.call("GET", &format!("/Users?{filter}"), None).await;
    assert_eq!(response.body["totalResults"], 1);
}

#[actix_web::test]
async fn filter_on_a_random_guid_is_an_empty_list_e10() {
    let app = spawn_app();
    users(&app, &["a"]).await;
    for filter in [
        "userName eq \"5e1e2f64-0a3b-4a55-9c5a-0d1f4c7a9b11\"",
        "id eq \"5e1e2f64-0a3b-4a55-9c5a-0d1f4c7a9b11\"",
        "externalId eq \"5e1e2f64-0a3b-4a55-9c5a-0d1f4c7a9b11\"",
    ] {
        let response = app.call("GET", &format!("/Users?{}", filter_query(filter)), None).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.body["totalResults"], 0);
        assert_eq!(response.body["Resources"], json!([]));
        assert_eq!(response.body["startIndex"], 1);
        assert_eq!(response.body["itemsPerPage"], 0);
    }
    let response =
        app.call("GET", &format!("/Groups?{}", filter_query("displayName eq \"no-such\"")), None).await;
    assert_eq!(response.body["totalResults"], 0);
    assert_eq!(response.body["Resources"], json!([]));
}

#[actix_web::test]
async fn unknown_query_parameters_are_ignored_e21() {
    let app = spawn_app();
    users(&app, &["a"]).await;
    let response = app.call("GET", "/Users?aadOptscim062020&foo=bar", None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["totalResults"], 1);
}

#[actix_web::test]
async fn index_paging_is_stable_across_pages_o10() {
    let app = spawn_app();
    let mut ids = users(&app, &["u1", "u2", "u3", "u4", "u5"]).await;
    ids.sort();
    let mut seen = Vec::new();
    for start in [1, 3, 5] {
        let response = app.call("GET", &format!("/Users?startIndex={start}&count=2"), None).await;
        assert_eq!(response.body["totalResults"], 5);
        assert_eq!(response.body["startIndex"], start);
        assert!(response.body["itemsPerPage"].is_u64());
        seen.extend(resource_ids(&response.body));
    }
    assert_eq!(seen, ids);
}

#[actix_web::test]
async fn count_zero_negative_and_oversized() {
    let app = spawn_app_with(ApiConfig { max_results: 2, ..Default::default() });
    users(&app, &["a", "b", "c"]).await;
    let response = app.call("GET", "/Users?count=0", None).await;
    assert_eq!(response.body["totalResults"], 3);
    assert_eq!(response.body["Resources"], json!([]));
    let response = app.call("GET", "/Users?count=-4", None).await;
    assert_eq!(response.body["itemsPerPage"], 0);
    let response = app.call("GET", "/Users?count=50&startIndex=-3", None).await;
    assert_eq!(response.body["itemsPerPage"], 2);
    assert_eq!(response.body["startIndex"], 1);
    app.call("GET", "/Users?count=many", None).await.assert_scim_error(400, Some("invalidValue"));
}

#[actix_web::test]
async fn bad_filters_are_400_invalid_filter_with_a_position() {
    let app = spawn_app();
    let response = app.call("GET", &format!("/Users?{}", filter_query("userName eq")), None).await;
    response.assert_scim_error(400, Some("invalidFilter"));
    let detail = response.body["detail"].as_str().unwrap();
    assert!(detail.contains("position 12"), "detail names the position: {detail}");
    let response = app.call("GET", &format!("/Users?{}", filter_query("nosuchattr eq \"x\"")), None).await;
    response.assert_scim_error(400, Some("invalidFilter"));
    let response = app.call("GET", &format!("/Groups?{}", filter_query("userName eq \"x\"")), None).await;
    response.assert_scim_error(400, Some("invalidFilter"));
}

#[actix_web::test]
async fn too_complex_filters_are_rejected() {
    let app = spawn_app_with(ApiConfig { max_filter_complexity: 3, ..Default::default() });
    let filter = filter_query("userName eq \"a\" or userName eq \"b\" or userName eq \"c\"");
    app.call("GET", &format!("/Users?{filter}"), None).await.assert_scim_error(400, Some("invalidFilter"));
}

#[actix_web::test]
async fn filters_without_an_index_scan_in_batches() {
    let app = spawn_app_with(ApiConfig { scan_batch_size: 2, ..Default::default() });
    let ids = users(&app, &["alice", "albert", "bob", "alfred", "carol"]).await;
    let filter = filter_query("userName sw \"al\"");
    let response = app.call("GET", &format!("/Users?{filter}&count=2&startIndex=2"), None).await;
    assert_eq!(response.body["totalResults"], 3);
    let mut expected: Vec<String> = vec![ids[0].clone(), ids[1].clone(), ids[3].clone()];
    expected.sort();
    assert_eq!(resource_ids(&response.body), expected[1..].to_vec());
}

#[actix_web::test]
async fn email_value_path_filter_e9() {
    let app = spawn_app();
    let body = json!({"schemas": [USER_SCHEMA], "userName": "bjensen",
        "emails": [{"type": "work", "value": "Bjensen@Example.com"}, {"type": "home", "value": "b@home.org"}]});
    let id = app.call("POST", "/Users", Some(body)).await.id();
    let filter = filter_query("emails[type eq \"work\"].value eq \"bjensen@example.com\"");
    let response = app.call("GET", &format!("/Users?{filter}"), None).await;
    assert_eq!(resource_ids(&response.body), vec![id]);
    let filter = filter_query("emails[type eq \"home\"].value eq \"bjensen@example.com\"");
    let response = app.call("GET", &format!("/Users?{filter}"), None).await;
    assert_eq!(response.body["totalResults"], 0);
}

#[actix_web::test]
async fn groups_filter_by_display_name_and_member() {
    let app = spawn_app();
    let a = app.create_user("a").await.id();
    let b = app.create_user("b").await.id();
    let staff = app.create_group("Staff", &[&a]).await.id();
    let admins = app.create_group("Admins", &[&a, &b]).await.id();
    let response =
        app.call("GET", &format!("/Groups?{}", filter_query("displayName eq \"staff\"")), None).await;
    assert_eq!(resource_ids(&response.body), vec![staff.clone()]);
    assert_eq!(response.body["Resources"][0]["members"][0]["value"], a.as_str());
    let reads_before = app.pipeline.members_page_reads();
    let filter = filter_query(&format!("members.value eq \"{b}\""));
    let response = app.call("GET", &format!("/Groups?{filter}&excludedAttributes=members"), None).await;
    assert_eq!(resource_ids(&response.body), vec![admins.clone()]);
    let filter = filter_query(&format!("displayName eq \"Staff\" and members[value eq \"{a}\"]"));
    let response = app.call("GET", &format!("/Groups?{filter}&excludedAttributes=members"), None).await;
    assert_eq!(resource_ids(&response.body), vec![staff.clone()]);
    // Membership tests served by the reverse index never page a group's members.
    assert_eq!(app.pipeline.members_page_reads(), reads_before);
    // Not an index shape: evaluated on the (bounded) membership.
    let response = app.call("GET", &format!("/Groups?{}", filter_query("members pr")), None).await;
    assert_eq!(response.body["totalResults"], 2);
    let filter = filter_query(&format!("not (members.value eq \"{b}\")"));
    let response = app.call("GET", &format!("/Groups?{filter}"), None).await;
    assert_eq!(resource_ids(&response.body), vec![staff.clone()]);
    // Users by group membership.
    let filter = filter_query(&format!("groups.value eq \"{admins}\""));
    let response = app.call("GET", &format!("/Users?{filter}"), None).await;
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(resource_ids(&response.body), expected);
    let response =
        app.call("GET", &format!("/Users?{}", filter_query("groups[display eq \"Staff\"]")), None).await;
    assert_eq!(resource_ids(&response.body), vec![a]);
}

#[actix_web::test]
async fn member_filters_on_huge_groups_are_too_many() {
    let app = spawn_app_with(ApiConfig { member_page_cap: 1, ..Default::default() });
    let a = app.create_user("a").await.id();
    let b = app.create_user("b").await.id();
    app.create_group("Big", &[&a, &b]).await;
    let response = app.call("GET", &format!("/Groups?{}", filter_query("members pr")), None).await;
    response.assert_scim_error(400, Some("tooMany"));
    // The index shape is unaffected by group size.
    let response = app
        .call("GET", &format!("/Groups?{}", filter_query(&format!("members.value eq \"{a}\""))), None)
        .await;
    assert_eq!(response.body["totalResults"], 1);
}

#[actix_web::test]
async fn sort_by_any_attribute_with_missing_values_last() {
    let app = spawn_app();
    let with_title = |name: &str, title: Option<&str>| {
        let mut body = json!({"schemas": [USER_SCHEMA], "userName": name});
        if let Some(title) = title {
            body["title"] = json!(title);
        }
        body
    };
    let c = app.call("POST", "/Users", Some(with_title("c", Some("beta")))).await.id();
    let a = app.call("POST", "/Users", Some(with_title("a", Some("Alpha")))).await.id();
    let b = app.call("POST", "/Users", Some(with_title("b", None))).await.id();
    let response = app.call("GET", "/Users?sortBy=title", None).await;
    assert_eq!(resource_ids(&response.body), vec![a.clone(), c.clone(), b.clone()]);
    let response = app.call("GET", "/Users?sortBy=title&sortOrder=descending", None).await;
    assert_eq!(resource_ids(&response.body), vec![c.clone(), a.clone(), b.clone()]);
    let response = app.call("GET", "/Users?sortBy=userName&startIndex=2&count=1", None).await;
    assert_eq!(response.body["totalResults"], 3);
    assert_eq!(resource_ids(&response.body), vec![b]);
    app.call("GET", "/Users?sortBy=nosuch", None).await.assert_scim_error(400, Some("invalidValue"));
}

#[actix_web::test]
async fn sorting_too_many_matches_is_400_too_many() {
    let app = spawn_app_with(ApiConfig { max_sort_matches: 2, ..Default::default() });
    users(&app, &["a", "b", "c"]).await;
    app.call("GET", "/Users?sortBy=userName", None).await.assert_scim_error(400, Some("tooMany"));
    let response =
        app.call("GET", &format!("/Users?sortBy=userName&{}", filter_query("userName eq \"a\"")), None).await;
    assert_eq!(response.body["totalResults"], 1);
}

#[actix_web::test]
async fn cursor_paging_walks_every_resource_once() {
    let app = spawn_app_with(ApiConfig { scan_batch_size: 2, ..Default::default() });
    let mut ids = users(&app, &["a", "b", "c", "d", "e"]).await;
    ids.sort();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let response = app.call("GET", &format!("/Users?count=2&cursor={cursor}"), None).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        assert!(response.body.get("startIndex").is_none());
        seen.extend(resource_ids(&response.body));
        match response.body.get("nextCursor").and_then(|next| next.as_str()) {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    app.call("GET", "/Users?cursor=bogus!", None).await.assert_scim_error(400, Some("invalidCursor"));
    app.call("GET", "/Users?cursor=&startIndex=1", None).await.assert_scim_error(400, Some("invalidValue"));
}

#[actix_web::test]
async fn a_users_cursor_is_rejected_by_groups() {
    let app = spawn_app();
    users(&app, &["a", "b"]).await;
    app.create_group("g", &[]).await;
    let response = app.call("GET", "/Users?count=1&cursor=", None).await;
    let cursor = response.body["nextCursor"].as_str().unwrap().to_owned();
    app.call("GET", &format!("/Groups?cursor={cursor}"), None)
        .await
        .assert_scim_error(400, Some("invalidCursor"));
}

#[actix_web::test]
async fn search_endpoints_take_a_search_request() {
    let app = spawn_app();
    let ids = users(&app, &["alice", "bob"]).await;
    let group = app.create_group("alpha", &[]).await.id();
    let body =
        json!({"schemas": [SEARCH_SCHEMA], "filter": "userName eq \"alice\"", "attributes": ["userName"]});
    let response = app.call("POST", "/Users/.search", Some(body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(resource_ids(&response.body), vec![ids[0].clone()]);
    assert_eq!(response.body["Resources"][0]["userName"], "alice");
    // The root search spans both types; attributes a type lacks simply match nothing there.
    let body = json!({"schemas": [SEARCH_SCHEMA], "filter": "userName sw \"a\" or displayName sw \"a\""});
    let response = app.call("POST", "/.search", Some(body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["totalResults"], 1);
    let body = json!({"schemas": [SEARCH_SCHEMA], "filter": "displayName sw \"a\""});
    let response = app.call("POST", "/.search", Some(body)).await;
    assert_eq!(resource_ids(&response.body), vec![group.clone()]);
    let body = json!({"schemas": [SEARCH_SCHEMA]});
    let response = app.call("POST", "/.search", Some(body)).await;
    assert_eq!(response.body["totalResults"], 3);
    let kinds: Vec<&str> = response.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|resource| resource["meta"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["User", "User", "Group"]);
    let body = json!({"schemas": [SEARCH_SCHEMA], "startIndex": 3, "count": 1});
    let response = app.call("POST", "/.search", Some(body)).await;
    assert_eq!(resource_ids(&response.body), vec![group]);
    // Without the SearchRequest schema: 400.
    let response = app.call("POST", "/Users/.search", Some(json!({"filter": "userName pr"}))).await;
    response.assert_scim_error(400, Some("invalidSyntax"));
    let body = json!({"schemas": [SEARCH_SCHEMA], "filter": "nosuch eq 1"});
    app.call("POST", "/.search", Some(body)).await.assert_scim_error(400, Some("invalidFilter"));
}

#[actix_web::test]
async fn deactivated_users_stay_findable_e16() {
    let app = spawn_app();
    let id = users(&app, &["bjensen"]).await.remove(0);
    let body = patch_body(json!([{"op": "replace", "value": {"active": false}}]));
    assert_eq!(app.call("PATCH", &format!("/Users/{id}"), Some(body)).await.status, StatusCode::OK);
    let response = app.call("GET", &format!("/Users?{}", filter_query("active eq false")), None).await;
    assert_eq!(resource_ids(&response.body), vec![id.clone()]);
    let response =
        app.call("GET", &format!("/Users?{}", filter_query("userName eq \"bjensen\"")), None).await;
    assert_eq!(response.body["Resources"][0]["active"], false);
}

#[actix_web::test]
async fn unfiltered_pages_stop_reading_at_their_window_when_the_store_counts() {
    let app = spawn_app_with(ApiConfig { scan_batch_size: 2, ..Default::default() });
    let mut ids = users(&app, &["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"]).await;
    ids.sort();
    let before = app.pipeline.resources_page_reads();
    let response = app.call("GET", "/Users?startIndex=1&count=2", None).await;
    assert_eq!(response.body["totalResults"], 10);
    assert_eq!(resource_ids(&response.body), ids[..2].to_vec());
    assert_eq!(app.pipeline.resources_page_reads() - before, 1, "one batch for the first page");
    let response = app.call("GET", "/Users?startIndex=10&count=5", None).await;
    assert_eq!(response.body["totalResults"], 10);
    assert_eq!(resource_ids(&response.body), ids[9..].to_vec());
    let response = app.call("GET", "/Users?startIndex=11&count=5", None).await;
    assert_eq!(response.body["totalResults"], 10);
    assert_eq!(response.body["Resources"], json!([]));
    // A store without counters: the API counts by scanning everything, same answers.
    app.pipeline.set_counts_known(false);
    let before = app.pipeline.resources_page_reads();
    let response = app.call("GET", "/Users?startIndex=3&count=2", None).await;
    assert_eq!(response.body["totalResults"], 10);
    assert_eq!(resource_ids(&response.body), ids[2..4].to_vec());
    assert!(app.pipeline.resources_page_reads() - before >= 5);
}
