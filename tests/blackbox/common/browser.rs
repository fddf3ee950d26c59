//! A plain HTTP "browser" for portal tests: keeps cookies, never follows
//! redirects by itself, and reads hidden CSRF fields from pages.

use std::collections::BTreeMap;

pub struct Browser {
    client: reqwest::blocking::Client,
    pub base: String,
    pub cookies: BTreeMap<String, String>,
    /// Sent with every request (e.g. `X-Forwarded-For`).
    pub headers: Vec<(String, String)>,
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub location: String,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser::build(base, None)
    }

    /// A browser whose connections leave from `local` (any 127.0.0.x works
    /// on Linux loopback), so the server sees another client address.
    pub fn from_address(base: &str, local: &str) -> Browser {
        Browser::build(base, Some(super::ip(local)))
    }

    fn build(base: &str, local: Option<std::net::IpAddr>) -> Browser {
        Browser {
            client: reqwest::blocking::Client::builder()
                .no_proxy()
                .local_address(local)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent("ipgate-test-browser/1.0")
                .build()
                .unwrap(),
            base: base.to_string(),
            cookies: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    /// Sends `name: value` with every request from now on (replacing an
    /// earlier value of `name`).
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
    }

    fn with_headers(
        &self,
        mut req: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req.header("cookie", self.cookie_header())
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn finish(&mut self, r: reqwest::blocking::Response) -> Answer {
        let set_cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        for c in &set_cookies {
            if let Some((k, rest)) = c.split_once('=') {
                let v = rest.split(';').next().unwrap_or_default();
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        Answer {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            location: r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            set_cookies,
            body: r.text().unwrap_or_default(),
        }
    }

    pub fn get(&mut self, path: &str) -> Answer {
        let r = self
            .with_headers(self.client.get(format!("{}{path}", self.base)))
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        self.finish(r)
    }

    pub fn head(&mut self, path: &str) -> Answer {
        let r = self
            .with_headers(self.client.head(format!("{}{path}", self.base)))
            .send()
            .unwrap_or_else(|e| panic!("HEAD {path}: {e}"));
        self.finish(r)
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let r = self
            .with_headers(self.client.post(format!("{}{path}", self.base)))
            .form(form)
            .send()
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        self.finish(r)
    }
}

/// The value of the first hidden `csrf` field of a page.
pub fn csrf(body: &str) -> String {
    find_csrf(body).unwrap_or_else(|| panic!("no CSRF field in {body}"))
}

/// The page's hidden CSRF value, if it has one.
pub fn find_csrf(body: &str) -> Option<String> {
    body.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string)
}

/// The TOTP code of a base32 secret for the 30-second step `offset` steps from now.
pub fn totp_code(secret_b32: &str, offset: i64) -> String {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .unwrap_or_else(|e| panic!("bad TOTP secret: {e:?}"));
    let t = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, secret);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    t.generate((now + offset * 30).max(0) as u64)
}
