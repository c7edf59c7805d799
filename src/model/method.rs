//! A method's key in a plan's per-method throttles.

use std::fmt;
use std::str::FromStr;

use http::Method;

use crate::error::FieldError;

/// A method's key in a plan's per-method throttles: `"{resourcePath}/{METHOD}"`.
///
/// `"/items/GET"`, `"/items/{id}/GET"`, `"//GET"` (the root), `"/pkg.Service/Method/POST"` (gRPC).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MethodPath {
    resource: Box<str>,
    method: Method,
}

impl MethodPath {
    /// A method path from its parts; the resource must start with `/`.
    pub fn new(resource: &str, method: Method) -> Result<Self, FieldError> {
        if !resource.starts_with('/') {
            return Err(FieldError::new(
                "resourcePath",
                format!("must start with '/', not {resource:?}"),
            ));
        }
        if resource.len() > 1 && resource.ends_with('/') {
            return Err(FieldError::new(
                "resourcePath",
                format!("must not end with '/' (only the root is \"/\"): {resource:?}"),
            ));
        }
        Ok(Self {
            resource: resource.into(),
            method,
        })
    }

    /// The resource path or template, `/items/{id}`.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }
}

impl FromStr for MethodPath {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            FieldError::new(
                "throttle",
                format!(
                    "{s:?} is not a method path \"{{resourcePath}}/{{METHOD}}\" such as \
                     \"/items/GET\" or \"//GET\" for the root"
                ),
            )
        };
        let (resource, method) = s.rsplit_once('/').ok_or_else(bad)?;
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| bad())?;
        let resource = if resource == "/" || resource.is_empty() {
            "/"
        } else {
            resource
        };
        if resource == "/" && !s.starts_with("//") {
            return Err(bad());
        }
        MethodPath::new(resource, method).map_err(|e| FieldError::new("throttle", e.reason))
    }
}

impl fmt::Display for MethodPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if &*self.resource == "/" {
            write!(f, "//{}", self.method)
        } else {
            write!(f, "{}/{}", self.resource, self.method)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths_parse_as_aws_writes_them() {
        let cases = [
            ("/items/GET", "/items", "GET"),
            ("/v1/items/POST", "/v1/items", "POST"),
            ("/items/{id}/GET", "/items/{id}", "GET"),
            ("//GET", "/", "GET"),
            ("/pkg.Service/Method/POST", "/pkg.Service/Method", "POST"),
        ];
        for (s, r, m) in cases {
            let p: MethodPath = s.parse().unwrap();
            assert_eq!((p.resource(), p.method().as_str()), (r, m));
            assert_eq!(p.to_string(), s);
        }
        for bad in [
            "GET",
            "/items/get",
            "/items/",
            "items/GET",
            "/GET",
            "/items//GET",
            "",
        ] {
            assert!(bad.parse::<MethodPath>().is_err(), "{bad}");
        }
    }
}
