//! API Gateway events in, proxy responses out.
//!
//! `lambda_http` parses every event by trying the REST (1.0) shape first, which for an HTTP API
//! 2.0 event (what this deployment's Terraform sends) is a whole parse thrown away, about a
//! third of the function's own CPU time per request. This module tries 2.0 first, then 1.0, and
//! otherwise reuses `lambda_http`: its request conversion, and the response shapes of
//! `aws_lambda_events` filled the way `lambda_http` fills them.

use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayV2httpRequest, ApiGatewayV2httpResponse,
};
use http::header::SET_COOKIE;
use lambda_http::{Body, Context, RequestExt, request::LambdaRequest};
use serde::{Deserialize, Serialize, de::Error as _};
use serde_json::value::RawValue;

/// Which kind of API Gateway sent the event: the response must have the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// HTTP API, payload format 2.0.
    HttpApi,
    /// REST API, or HTTP API with payload format 1.0.
    Rest,
}

/// An API Gateway event.
#[derive(Debug)]
pub struct ApiEvent(LambdaRequest);

impl<'de> Deserialize<'de> for ApiEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(d)?;
        if raw.get().trim_start().starts_with('{') && serde_json::from_str::<crate::MigrateEvent>(raw.get()).is_ok() {
            return Err(D::Error::custom(
                "this is the API function: the migrate event belongs to the migration function (APP_FUNCTION=migrate)",
            ));
        }
        if let Ok(v2) = serde_json::from_str::<ApiGatewayV2httpRequest>(raw.get()) {
            return Ok(ApiEvent(LambdaRequest::ApiGatewayV2(v2)));
        }
        match serde_json::from_str::<ApiGatewayProxyRequest>(raw.get()) {
            Ok(v1) => Ok(ApiEvent(LambdaRequest::ApiGatewayV1(v1))),
            Err(e) => Err(D::Error::custom(format!("not an API Gateway proxy event (payload 2.0 or 1.0): {e}"))),
        }
    }
}

impl ApiEvent {
    pub fn from_slice(json: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(json)
    }

    /// The request `lambda_http` would have built, with the invocation's context attached.
    pub fn into_request(self, context: Context) -> (Origin, lambda_http::Request) {
        let origin = match self.0 {
            LambdaRequest::ApiGatewayV2(_) => Origin::HttpApi,
            _ => Origin::Rest,
        };
        (origin, http::Request::<Body>::from(self.0).with_lambda_context(context))
    }
}

/// A proxy response, in the shape of the event's origin.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ApiResponse {
    HttpApi(ApiGatewayV2httpResponse),
    Rest(ApiGatewayProxyResponse),
}

impl ApiResponse {
    pub fn new(origin: Origin, res: http::Response<Body>) -> Self {
        let (parts, body) = res.into_parts();
        let (is_base64_encoded, body) = match body {
            Body::Empty => (false, None),
            b @ Body::Text(_) => (false, Some(b)),
            b @ Body::Binary(_) => (true, Some(b)),
            _ => (false, None),
        };
        let status_code = i64::from(parts.status.as_u16());
        let mut headers = parts.headers;
        match origin {
            Origin::HttpApi => {
                // HTTP APIs take cookies in their own field, and no multi-value headers.
                let cookies =
                    headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
                headers.remove(SET_COOKIE);
                let mut r = ApiGatewayV2httpResponse::default();
                r.status_code = status_code;
                r.headers = headers;
                r.cookies = cookies;
                r.body = body;
                r.is_base64_encoded = is_base64_encoded;
                ApiResponse::HttpApi(r)
            }
            Origin::Rest => {
                // REST APIs merge the two header fields: all of them go in one, once.
                let mut r = ApiGatewayProxyResponse::default();
                r.status_code = status_code;
                r.multi_value_headers = headers;
                r.body = body;
                r.is_base64_encoded = is_base64_encoded;
                ApiResponse::Rest(r)
            }
        }
    }
}
