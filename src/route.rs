//! Which methods need a key: matching a request's method and path to the layer's routes.
//!
//! Routes are AWS's resources and methods: a template such as `/items/{id}` (AWS's greedy
//! `{proxy+}` is accepted too) and an HTTP method, each with its `apiKeyRequired`. A request whose
//! method and path match no route gets the layer's default. A method's own setting wins; HEAD
//! without one follows GET (axum answers HEAD with the GET handler); then the resource's `ANY`.
//!
//! The routes decide only whether a key is needed: a plan's per-method throttles are matched by
//! the plan itself against the request's path ([`StagePlan::bucket_for`](crate::plan::StagePlan::bucket_for)),
//! so `"/items/{id}/GET"` applies to `GET /items/42` whether or not the layer names the route.

use http::Method;

use crate::error::ConfigError;

/// One resource's methods.
/// Up to this many parameterless templates, a path is first compared with each of them.
const STATIC_WALK: usize = 16;

#[derive(Debug)]
struct Resource {
    template: Box<str>,
    methods: Vec<(Method, bool)>,
}

/// What the layer knows of a request's method.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteMatch<'a> {
    /// The layer's route template that matched, if one did: what metrics and logs name the route
    /// by (never the raw path, which a client chooses).
    pub(crate) template: Option<&'a str>,
    /// The matched route's place among [`Routes::templates`], if one matched.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) index: Option<usize>,
    /// Whether the method requires an API key.
    pub(crate) key_required: bool,
}

/// The layer's routes.
#[derive(Debug)]
pub(crate) struct Routes {
    router: matchit::Router<usize>,
    /// The templates without a parameter, with their resource: a path equal to one is that
    /// route (matchit prefers a static route too), found without walking the router.
    statics: Vec<(Box<str>, usize)>,
    resources: Vec<Resource>,
    default_required: bool,
}

/// A template as matchit routes it: AWS's `{proxy+}` is matchit's `{*proxy}`. With
/// `positional`, parameters are renamed by their place (`{p0}`, `{*p1}`), so that templates that
/// differ only in their parameters' names (`/items/{id}`, `/items/{itemId}`) are one route, as
/// they are one resource on AWS.
pub(crate) fn matchit_template(template: &str, positional: bool) -> String {
    let mut n = 0;
    template
        .split('/')
        .map(|seg| {
            let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                return seg.to_owned();
            };
            if inner.contains(['{', '}']) {
                return seg.to_owned(); // not one parameter: matchit says why
            }
            let (name, greedy) = match inner.strip_suffix('+') {
                Some(name) => (name, true),
                None => (
                    inner.strip_prefix('*').unwrap_or(inner),
                    inner.starts_with('*'),
                ),
            };
            let name = if positional {
                n += 1;
                format!("p{}", n - 1)
            } else {
                name.to_owned()
            };
            if greedy {
                format!("{{*{name}}}")
            } else {
                format!("{{{name}}}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A method's setting on a resource: its own, else GET's for HEAD (axum answers HEAD with the
/// GET handler), else the resource's `ANY`.
pub(crate) fn setting<T: Copy>(entries: &[(Method, T)], method: &Method) -> Option<T> {
    let own = |want: &Method| entries.iter().find(|(m, _)| m == want).map(|(_, v)| *v);
    own(method)
        .or_else(|| {
            (method == Method::HEAD)
                .then(|| own(&Method::GET))
                .flatten()
        })
        .or_else(|| {
            entries
                .iter()
                .find(|(m, _)| m.as_str() == "ANY")
                .map(|(_, v)| *v)
        })
}

impl Routes {
    pub(crate) fn new(default_required: bool) -> Self {
        Self {
            router: matchit::Router::new(),
            statics: Vec::new(),
            resources: Vec::new(),
            default_required,
        }
    }

    /// Sets whether `method` on `template` requires a key.
    pub(crate) fn set(
        &mut self,
        method: Method,
        template: &str,
        key_required: bool,
    ) -> Result<(), ConfigError> {
        let err = |reason: String| ConfigError::Route {
            method: method.to_string(),
            template: template.to_owned(),
            reason,
        };
        if !template.starts_with('/') {
            return Err(err("a route template starts with '/'".into()));
        }
        let i = match self.resources.iter().position(|r| &*r.template == template) {
            Some(i) => i,
            None => {
                let i = self.resources.len();
                self.router
                    .insert(matchit_template(template, false), i)
                    .map_err(|e| err(e.to_string()))?;
                if !template.contains(['{', '}']) {
                    self.statics.push((template.into(), i));
                }
                self.resources.push(Resource {
                    template: template.into(),
                    methods: Vec::new(),
                });
                i
            }
        };
        let methods = &mut self.resources[i].methods;
        match methods.iter_mut().find(|(m, _)| *m == method) {
            Some(entry) => entry.1 = key_required,
            None => methods.push((method, key_required)),
        }
        Ok(())
    }

    /// Whether some method on the resource `template` resolves to (a route template, or a plan's
    /// resource path matched as a request's path would be) requires a key.
    pub(crate) fn any_method_requires_key(&self, template: &str) -> bool {
        if self.default_required {
            return true;
        }
        match self.index(template) {
            Some(i) => self.resources[i].methods.iter().any(|(_, req)| *req),
            None => false,
        }
    }

    /// The route templates, in the order of [`RouteMatch::index`].
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn templates(&self) -> impl Iterator<Item = &str> {
        self.resources.iter().map(|r| &*r.template)
    }

    /// The resource a path (or a template) matches.
    #[inline]
    fn index(&self, path: &str) -> Option<usize> {
        if self.resources.is_empty() {
            return None;
        }
        let found = if self.statics.len() <= STATIC_WALK {
            self.statics
                .iter()
                .find(|(t, _)| **t == *path)
                .map(|(_, i)| *i)
        } else {
            None
        };
        found.or_else(|| self.router.at(path).ok().map(|m| *m.value))
    }

    /// Matches a request: a method's own setting on the resource, else (HEAD) GET's, else the
    /// resource's `ANY`, else the default.
    #[inline]
    pub(crate) fn resolve<'a>(&'a self, method: &Method, path: &'a str) -> RouteMatch<'a> {
        match self.index(path) {
            Some(i) => {
                let r = &self.resources[i];
                RouteMatch {
                    template: Some(&r.template),
                    index: Some(i),
                    key_required: setting(&r.methods, method).unwrap_or(self.default_required),
                }
            }
            None => RouteMatch {
                template: None,
                index: None,
                key_required: self.default_required,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_and_methods_decide() {
        let mut r = Routes::new(false);
        r.set(Method::GET, "/items", true).unwrap();
        r.set(Method::GET, "/items/{id}", true).unwrap();
        r.set(Method::POST, "/orders", true).unwrap();
        r.set(Method::GET, "/health", false).unwrap();
        r.set(Method::GET, "/files/{path+}", true).unwrap();
        let m = r.resolve(&Method::GET, "/items/42");
        assert_eq!(
            (m.template.unwrap_or("(none)"), m.key_required),
            ("/items/{id}", true)
        );
        let m = r.resolve(&Method::DELETE, "/items/42");
        assert_eq!(
            (m.template.unwrap_or("(none)"), m.key_required),
            ("/items/{id}", false)
        );
        let m = r.resolve(&Method::GET, "/health");
        assert!(!m.key_required);
        let m = r.resolve(&Method::GET, "/files/a/b/c");
        assert_eq!(
            (m.template.unwrap_or("(none)"), m.key_required),
            ("/files/{path+}", true)
        );
        let m = r.resolve(&Method::GET, "/nowhere");
        assert_eq!((m.template, m.key_required), (None, false));
        assert!(r.resolve(&Method::POST, "/orders").key_required);
        assert!(!r.resolve(&Method::PUT, "/orders").key_required);
        // HEAD follows GET unless it has its own setting; ANY covers the rest.
        assert!(r.resolve(&Method::HEAD, "/items/7").key_required);
        r.set(Method::HEAD, "/items/{id}", false).unwrap();
        assert!(!r.resolve(&Method::HEAD, "/items/7").key_required);
        let any = Method::from_bytes(b"ANY").unwrap();
        r.set(any, "/orders", true).unwrap();
        assert!(r.resolve(&Method::PUT, "/orders").key_required);
        assert!(r.any_method_requires_key("/orders"));
        assert!(!r.any_method_requires_key("/health"));
        assert!(r.any_method_requires_key("/items/{itemId}"));
        assert!(r.set(Method::GET, "items", true).is_err());
        // A static route wins over a template at the same place, with or without the walk.
        for extra in [0, 20] {
            let mut r = Routes::new(false);
            for i in 0..extra {
                r.set(Method::GET, &format!("/static{i}"), true).unwrap();
            }
            r.set(Method::GET, "/items/{id}", true).unwrap();
            r.set(Method::GET, "/items/new", false).unwrap();
            let m = r.resolve(&Method::GET, "/items/new");
            assert_eq!(
                (m.template.unwrap_or("(none)"), m.key_required),
                ("/items/new", false)
            );
            let m = r.resolve(&Method::GET, "/items/7");
            assert_eq!(
                (m.template.unwrap_or("(none)"), m.key_required),
                ("/items/{id}", true)
            );
            let m = r.resolve(&Method::GET, "/items/new/");
            assert_eq!(m.template, None);
            if extra > 0 {
                let m = r.resolve(&Method::GET, "/static19");
                assert_eq!(
                    (m.template.unwrap_or("(none)"), m.key_required),
                    ("/static19", true)
                );
            }
        }
        assert!(r.set(Method::GET, "/items/{a}{b}", true).is_err());
    }

    #[test]
    fn templates_are_routed_with_positional_names_when_asked() {
        assert_eq!(matchit_template("/files/{path+}", false), "/files/{*path}");
        assert_eq!(matchit_template("/a/{id}/b/{x+}", true), "/a/{p0}/b/{*p1}");
        assert_eq!(matchit_template("/items/{a}{b}", true), "/items/{a}{b}");
        assert_eq!(matchit_template("//", true), "//");
    }
}
