//! The console's HTTP tests' client: a user signed in through `/login` (session cookie and
//! CSRF token) who GETs pages and POSTs forms as a browser without JavaScript would, and the
//! helpers that read the pages and the audit trail.

use serde_json::json;

use crate::common::TestServer;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A signed-in console user: the session cookie and the CSRF token of its pages.
pub(crate) struct Console {
    /// The client, which does not follow redirects; requests made with it directly carry no
    /// session unless given `cookie`.
    pub(crate) http: reqwest::Client,
    url: String,
    /// `sluice_session=...`, for a `cookie` header.
    pub(crate) cookie: String,
    pub(crate) csrf: String,
    pub(crate) email: String,
}

/// What the server answered to one request.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) location: String,
    pub(crate) content_type: String,
    pub(crate) html: String,
}

impl Console {
    /// Create a user `{role}@example.com` with this role and sign in as them.
    pub(crate) async fn sign_in(server: &TestServer, role: &str) -> Console {
        Console::sign_in_at(server, role, "/sources").await
    }

    /// Create a user `{role}@example.com` with this role and sign in as them, landing on
    /// `page`, which must answer 200.
    pub(crate) async fn sign_in_at(server: &TestServer, role: &str, page: &str) -> Console {
        let email = format!("{role}@example.com");
        let (status, user) = server
            .admin(
                "POST",
                "/api/v1/users",
                Some(json!({"email": email, "name": format!("The {role}"), "role": role, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 201, "{user}");
        Console::log_in_at(server, &email, PASSWORD, page)
            .await
            .unwrap_or_else(|status| panic!("sign-in as {email}: {status}"))
    }

    /// Sign in through the login form as an existing user; `Err` holds the status otherwise.
    pub(crate) async fn log_in(
        server: &TestServer,
        email: &str,
        password: &str,
    ) -> Result<Console, u16> {
        Console::log_in_at(server, email, password, "/sources").await
    }

    /// Sign in through the login form, landing on `page` (which must answer 200) for the
    /// CSRF token; `Err` holds the login form's status when it does not sign in.
    async fn log_in_at(
        server: &TestServer,
        email: &str,
        password: &str,
        page: &str,
    ) -> Result<Console, u16> {
        let email = email.to_owned();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = encode(&[("email", &email), ("password", password), ("next", page)]);
        let response = http
            .post(format!("{}/login", server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        if response.status() != 303 {
            return Err(response.status().as_u16());
        }
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("sluice_session="))
            .and_then(|v| v.split(';').next())
            .expect("session cookie")
            .to_owned();
        let mut console = Console {
            http,
            url: server.url.clone(),
            cookie,
            csrf: String::new(),
            email,
        };
        let landing = console.get(page).await;
        assert_eq!(landing.status, 200, "{page}: {}", landing.html);
        console.csrf = csrf_of(&landing.html);
        Ok(console)
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// POST a form with this session's CSRF token.
    pub(crate) async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut all = vec![("_csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &encode(&all)).await
    }

    /// POST a form with a forged CSRF token.
    pub(crate) async fn forge(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut all = vec![("_csrf", "forged-token")];
        all.extend_from_slice(fields);
        self.post_raw(path, &encode(&all)).await
    }

    /// POST this urlencoded body as it is.
    pub(crate) async fn post_raw(&self, path: &str, body: &str) -> Answer {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        answer(response).await
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (status, location, content_type) = (
        response.status().as_u16(),
        header("location"),
        header("content-type"),
    );
    let html = response.text().await.unwrap();
    Answer {
        status,
        location,
        content_type,
        html,
    }
}

pub(crate) fn encode(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// The CSRF token of the first form on the page.
pub(crate) fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"_csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 20;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// The text of the element with this id (up to its first closing tag), unescaped.
pub(crate) fn element(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in:\n{html}"));
    let open_end = at + html[at..].find('>').unwrap() + 1;
    let close = open_end + html[open_end..].find("</").unwrap();
    unescape(&html[open_end..close])
}

pub(crate) fn unescape(text: &str) -> String {
    [
        ("&#60;", "<"),
        ("&#62;", ">"),
        ("&#34;", "\""),
        ("&#39;", "'"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#38;", "&"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
}

/// The opening tag of the element with this id.
pub(crate) fn tag<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in:\n{html}"));
    let start = html[..at].rfind('<').unwrap();
    &html[start..at + html[at..].find('>').unwrap() + 1]
}

/// The `(action, actor)` of the audit trail's entries about this resource type.
pub(crate) async fn audit_actions(
    server: &TestServer,
    resource_type: &str,
) -> Vec<(String, String)> {
    let (status, page) = server
        .admin(
            "GET",
            &format!("/api/v1/audit?resourceType={resource_type}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
