//! Every endpoint against every kind of credential, in one table.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Stack, stack, ws};
use crate::scenarios::urlencode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    OwnMaster,
    OtherMaster,
    ReadWrite,
    ReadOnly,
    Revoked,
    OtherChannel,
    None,
    Malformed,
}

const CREDS: [Cred; 8] = [
    Cred::OwnMaster,
    Cred::OtherMaster,
    Cred::ReadWrite,
    Cred::ReadOnly,
    Cred::Revoked,
    Cred::OtherChannel,
    Cred::None,
    Cred::Malformed,
];

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    ListChannels,
    CreateChannel,
    GetChannel,
    AmendChannel,
    DeleteChannel,
    ListTokens,
    CreateToken,
    GetToken,
    RevokeToken,
    Write,
    Head,
    Read,
    Mark,
    DeleteMessage,
    Notify,
}

struct World {
    master: String,
    other_master: String,
    channel: String,
    owner: String,
    tokens: [(Cred, String); 4],
}

impl World {
    fn auth(&self, cred: Cred) -> Option<String> {
        let bearer = |t: &str| Some(format!("Bearer {t}"));
        match cred {
            Cred::OwnMaster => bearer(&self.master),
            Cred::OtherMaster => bearer(&self.other_master),
            Cred::None => None,
            Cred::Malformed => Some("Basic Zm9vOmJhcg==".into()),
            c => self.tokens.iter().find(|(k, _)| *k == c).and_then(|(_, t)| bearer(t)),
        }
    }
}

/// Calls `endpoint` with `cred`; resources an endpoint destroys are made fresh for each call.
async fn call(s: &Stack, w: &World, endpoint: Endpoint, cred: Cred) -> u16 {
    let auth = w.auth(cred);
    let auth = auth.as_deref();
    let c = &w.channel;
    let manage = format!("/api/v1/channel/manage/{c}");
    let messages = format!("/api/v1/channel/{c}");
    let create = json!({"public_read": true, "public_write": true, "sequenced": false,
        "retention": {"min_age_days": 0, "max_age_days": 0, "auto_prune": true}});
    let (method, path, body) = match endpoint {
        Endpoint::ListChannels => (Method::GET, "/api/v1/channel/manage/list".to_owned(), None),
        Endpoint::CreateChannel => (Method::POST, "/api/v1/channel/manage".to_owned(), Some(create)),
        Endpoint::GetChannel => (Method::GET, manage, None),
        Endpoint::AmendChannel => {
            (Method::POST, manage, Some(json!({"public_read": true, "public_write": true, "locked": false})))
        }
        Endpoint::DeleteChannel => {
            let (fresh, _) = s.channel(&w.master, false).await;
            // Tokens of the fresh channel stand in for the channel-token kinds.
            (Method::DELETE, format!("/api/v1/channel/manage/{fresh}"), None)
        }
        Endpoint::ListTokens => (Method::GET, format!("{manage}/api-token"), None),
        Endpoint::CreateToken => (
            Method::POST,
            format!("{manage}/api-token"),
            Some(json!({"description": "x", "can_read": true, "can_write": true})),
        ),
        Endpoint::GetToken => {
            let (id, _) = s.token(&w.master, c, true, false).await;
            (Method::GET, format!("{manage}/api-token/{id}"), None)
        }
        Endpoint::RevokeToken => {
            let (id, _) = s.token(&w.master, c, true, false).await;
            (Method::DELETE, format!("{manage}/api-token/{id}"), None)
        }
        Endpoint::Write => (Method::POST, messages, Some(json!({"hello": "world"}))),
        Endpoint::Head => (Method::HEAD, messages, None),
        Endpoint::Read => (Method::GET, messages, None),
        Endpoint::Mark => {
            let seq = s.write(c, &w.owner, &json!({"m": 1})).await;
            (Method::POST, format!("{messages}/{seq}"), Some(json!({"read": true})))
        }
        Endpoint::DeleteMessage => {
            let seq = s.write(c, &w.owner, &json!({"d": 1})).await;
            (Method::DELETE, format!("{messages}/{seq}"), None)
        }
        Endpoint::Notify => {
            let query = match cred {
                Cred::None => String::new(),
                Cred::Malformed | Cred::OwnMaster | Cred::OtherMaster => String::new(),
                _ => format!(
                    "?token={}",
                    urlencode(auth.and_then(|a| a.strip_prefix("Bearer ")).unwrap_or(""))
                ),
            };
            let path = format!("{messages}/notify{query}");
            return match cred {
                // The master token goes in the Authorization header (the gateway resolves it).
                Cred::OwnMaster | Cred::OtherMaster | Cred::Malformed => {
                    ws_with_auth(s, &path, auth.unwrap_or_default()).await
                }
                _ => match ws(&s.gateway, &path, None).await {
                    Ok(_) => 101,
                    Err(status) => status,
                },
            };
        }
    };
    let mut req = s.req(method, &path, auth);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn ws_with_auth(s: &Stack, path: &str, auth: &str) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request =
        format!("{}{path}", s.gateway.replacen("http://", "ws://", 1)).into_client_request().unwrap();
    request.headers_mut().insert("authorization", auth.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

/// What each credential must get on each endpoint.
fn expected(endpoint: Endpoint, cred: Cred) -> u16 {
    use Endpoint::*;
    let management = matches!(
        endpoint,
        ListChannels
            | CreateChannel
            | GetChannel
            | AmendChannel
            | DeleteChannel
            | ListTokens
            | CreateToken
            | GetToken
            | RevokeToken
    );
    let success = match endpoint {
        DeleteChannel | RevokeToken => 204,
        Notify => 101,
        _ => 200,
    };
    match cred {
        Cred::None | Cred::Malformed => 400,
        Cred::OwnMaster => success,
        // Another account's channel does not exist for it; its own list and new channels work.
        Cred::OtherMaster => match endpoint {
            ListChannels | CreateChannel => 200,
            _ => 404,
        },
        _ if management => 401,
        Cred::Revoked | Cred::OtherChannel => 401,
        Cred::ReadOnly if matches!(endpoint, Write) => 401,
        Cred::ReadWrite | Cred::ReadOnly => success,
    }
}

#[tokio::test]
async fn every_endpoint_answers_every_kind_of_credential_as_specified() {
    let s = stack().await;
    let master = s.account().await;
    let other_master = s.account().await;
    let (channel, owner) = s.channel(&master, false).await;
    let (_, rw) = s.token(&master, &channel, true, true).await;
    let (_, ro) = s.token(&master, &channel, true, false).await;
    let (revoked_id, revoked) = s.token(&master, &channel, true, true).await;
    let resp = s
        .req(
            Method::DELETE,
            &format!("/api/v1/channel/manage/{channel}/api-token/{revoked_id}"),
            Some(&format!("Bearer {master}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (elsewhere, _) = s.channel(&master, false).await;
    let (_, other_channel) = s.token(&master, &elsewhere, true, true).await;
    let w = World {
        master,
        other_master,
        channel,
        owner,
        tokens: [
            (Cred::ReadWrite, rw),
            (Cred::ReadOnly, ro),
            (Cred::Revoked, revoked),
            (Cred::OtherChannel, other_channel),
        ],
    };
    let endpoints = [
        Endpoint::ListChannels,
        Endpoint::CreateChannel,
        Endpoint::GetChannel,
        Endpoint::AmendChannel,
        Endpoint::DeleteChannel,
        Endpoint::ListTokens,
        Endpoint::CreateToken,
        Endpoint::GetToken,
        Endpoint::RevokeToken,
        Endpoint::Write,
        Endpoint::Head,
        Endpoint::Read,
        Endpoint::Mark,
        Endpoint::DeleteMessage,
        Endpoint::Notify,
    ];
    let mut wrong = Vec::new();
    for endpoint in endpoints {
        for cred in CREDS {
            let got = call(&s, &w, endpoint, cred).await;
            let want = expected(endpoint, cred);
            if got != want {
                wrong.push(format!("{endpoint:?} with {cred:?}: got {got}, want {want}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
