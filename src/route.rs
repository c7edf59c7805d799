//! Which methods need a key: matching a request's method and path to the layer's routes.
//!
//! Routes are AWS's resources and methods: a template such as `/items/{id}` (AWS's greedy
//! `{proxy+}` is accepted too) and an HTTP method, each with its `apiKeyRequired`. A request whose
//! method and path match no route gets the layer's default. The matched template is the resource
//! path a plan's per-method throttles name (`"/items/{id}/GET"` applies to `GET /items/42`).

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
    /// The matched template, or the request's path when no route matched.
    pub(crate) resource: &'a str,
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

/// AWS's `{proxy+}` is matchit's `{*proxy}`.
fn to_matchit(template: &str) -> String {
    template
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                Some(name) => format!("{{*{name}}}"),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
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
                    .insert(to_matchit(template), i)
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

    /// Whether `template` is a route of the layer.
    pub(crate) fn has_template(&self, template: &str) -> bool {
        self.resources.iter().any(|r| &*r.template == template)
    }

    /// Whether `method` on exactly `template` requires a key.
    pub(crate) fn key_required_for(&self, method: &Method, template: &str) -> bool {
        self.resources
            .iter()
            .find(|r| &*r.template == template)
            .and_then(|r| r.methods.iter().find(|(m, _)| m == method))
            .map_or(self.default_required, |(_, req)| *req)
    }

    /// Matches a request.
    #[inline]
    pub(crate) fn resolve<'a>(&'a self, method: &Method, path: &'a str) -> RouteMatch<'a> {
        if self.resources.is_empty() {
            return RouteMatch {
                resource: path,
                key_required: self.default_required,
            };
        }
        let found = if self.statics.len() <= STATIC_WALK {
            self.statics
                .iter()
                .find(|(t, _)| **t == *path)
                .map(|(_, i)| *i)
        } else {
            None
        };
        match found.map_or_else(|| self.router.at(path).map(|m| *m.value), Ok) {
            Ok(i) => {
                let r = &self.resources[i];
                RouteMatch {
                    resource: &r.template,
                    key_required: r
                        .methods
                        .iter()
                        .find(|(x, _)| x == method)
                        .map_or(self.default_required, |(_, req)| *req),
                }
            }
            Err(_) => RouteMatch {
                resource: path,
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
        assert_eq!((m.resource, m.key_required), ("/items/{id}", true));
        let m = r.resolve(&Method::DELETE, "/items/42");
        assert_eq!((m.resource, m.key_required), ("/items/{id}", false));
        let m = r.resolve(&Method::GET, "/health");
        assert!(!m.key_required);
        let m = r.resolve(&Method::GET, "/files/a/b/c");
        assert_eq!((m.resource, m.key_required), ("/files/{path+}", true));
        let m = r.resolve(&Method::GET, "/nowhere");
        assert_eq!((m.resource, m.key_required), ("/nowhere", false));
        assert!(r.key_required_for(&Method::POST, "/orders"));
        assert!(!r.key_required_for(&Method::PUT, "/orders"));
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
            assert_eq!((m.resource, m.key_required), ("/items/new", false));
            let m = r.resolve(&Method::GET, "/items/7");
            assert_eq!((m.resource, m.key_required), ("/items/{id}", true));
            let m = r.resolve(&Method::GET, "/items/new/");
            assert_eq!(m.resource, "/items/new/");
            if extra > 0 {
                let m = r.resolve(&Method::GET, "/static19");
                assert_eq!((m.resource, m.key_required), ("/static19", true));
            }
        }
        assert!(r.set(Method::GET, "/items/{a}{b}", true).is_err());
    }
}
