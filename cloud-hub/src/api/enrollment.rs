//! `EnrollmentService`: join tokens, enrolment, renewal over mTLS,
//! revocation and the list of sites. The logic is in [`crate::enroll`];
//! this adapter authenticates, converts and maps errors (`api::status`).

use std::sync::Arc;
use std::time::Duration;

use obs_proto::v1::enrollment_service_server::EnrollmentService;
use obs_proto::v1::{
    CreateJoinTokenRequest, CreateJoinTokenResponse, EnrollRequest, EnrollResponse,
    ListSitesRequest, ListSitesResponse, Location, MqttEndpoint, RenewCertificateRequest,
    RenewCertificateResponse, RevokeSiteRequest, RevokeSiteResponse, Site,
    SiteState as ApiSiteState,
};
use tonic::{Request, Response, Status};

use super::{ApiContext, enroll_status, time_from_ns};
use crate::access::Role;
use crate::enroll::{Enrollment, IssuedSite, JoinTokenRequest};
use crate::store::registry::{SiteLocation, SiteState};

/// The gRPC face of [`Enrollment`].
pub struct EnrollmentApi {
    context: ApiContext,
    enrollment: Arc<Enrollment>,
}

impl EnrollmentApi {
    pub fn new(context: ApiContext) -> Self {
        EnrollmentApi {
            enrollment: context.enrollment.clone(),
            context,
        }
    }
}

fn api_state(state: SiteState) -> ApiSiteState {
    match state {
        SiteState::Pending => ApiSiteState::Pending,
        SiteState::Active => ApiSiteState::Active,
        SiteState::Revoked => ApiSiteState::Revoked,
    }
}

fn mqtt(issued: &IssuedSite) -> MqttEndpoint {
    MqttEndpoint {
        host: issued.broker.host.clone(),
        port: u32::from(issued.broker.port),
        topic_prefix: issued.topic_prefix.clone(),
        client_id: issued.site.clone(),
    }
}

#[tonic::async_trait]
impl EnrollmentService for EnrollmentApi {
    async fn create_join_token(
        &self,
        request: Request<CreateJoinTokenRequest>,
    ) -> Result<Response<CreateJoinTokenResponse>, Status> {
        let subject = request.get_ref().site.clone();
        let caller = self
            .context
            .auth
            .authorize(
                &request,
                Role::Admin,
                "EnrollmentService/CreateJoinToken",
                &subject,
            )
            .await?;
        let r = request.into_inner();
        let ttl = match r.ttl {
            None => None,
            Some(ttl) if ttl.seconds == 0 && ttl.nanos == 0 => None,
            Some(ttl) => Some(
                Duration::try_from(ttl)
                    .map_err(|e| Status::invalid_argument(format!("ttl: {e}")))?,
            ),
        };
        let created = self
            .enrollment
            .create_join_token(
                JoinTokenRequest {
                    site: r.site,
                    display_name: r.display_name,
                    location: r.location.map(|l| SiteLocation {
                        latitude_deg: l.latitude_deg,
                        longitude_deg: l.longitude_deg,
                        altitude_m: l.altitude_m,
                    }),
                    ttl,
                    reenroll: r.reenroll,
                    mirror_segments: r.mirror_segments,
                },
                &caller.name,
            )
            .await
            .map_err(enroll_status)?;
        Ok(Response::new(CreateJoinTokenResponse {
            token: created.token,
            token_id: created.token_id,
            expires_at: Some(time_from_ns(created.expires_at_unix_ns)),
            join_command: created.join_command,
            ca_hash: created.ca_hash,
        }))
    }

    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let r = request.into_inner();
        let issued = self
            .enrollment
            .enroll(&r.token, &r.csr_pem, &r.node_id)
            .await
            .map_err(enroll_status)?;
        Ok(Response::new(EnrollResponse {
            mqtt: Some(mqtt(&issued)),
            site: issued.site,
            certificate_chain_pem: issued.chain_pem,
            ca_certificate_pem: issued.ca_pem,
            certificate_not_after: Some(time_from_ns(issued.not_after_unix_ns)),
            mirror_segments: issued.mirror_segments,
        }))
    }

    async fn renew_certificate(
        &self,
        request: Request<RenewCertificateRequest>,
    ) -> Result<Response<RenewCertificateResponse>, Status> {
        let peer = request.peer_certs();
        let leaf = peer.as_ref().and_then(|certs| certs.first());
        let issued = self
            .enrollment
            .renew(leaf.map(|c| c.as_ref()), &request.get_ref().csr_pem)
            .await
            .map_err(enroll_status)?;
        Ok(Response::new(RenewCertificateResponse {
            certificate_chain_pem: issued.chain_pem,
            certificate_not_after: Some(time_from_ns(issued.not_after_unix_ns)),
        }))
    }

    async fn revoke_site(
        &self,
        request: Request<RevokeSiteRequest>,
    ) -> Result<Response<RevokeSiteResponse>, Status> {
        let subject = request.get_ref().site.clone();
        let caller = self
            .context
            .auth
            .authorize(
                &request,
                Role::Admin,
                "EnrollmentService/RevokeSite",
                &subject,
            )
            .await?;
        let r = request.into_inner();
        let (revoked_at, sessions_closed) = self
            .enrollment
            .revoke(&r.site, &r.reason, &caller.name)
            .await
            .map_err(enroll_status)?;
        Ok(Response::new(RevokeSiteResponse {
            revoked_at: Some(time_from_ns(revoked_at)),
            sessions_closed,
        }))
    }

    async fn list_sites(
        &self,
        request: Request<ListSitesRequest>,
    ) -> Result<Response<ListSitesResponse>, Status> {
        self.context
            .auth
            .authorize(&request, Role::Admin, "EnrollmentService/ListSites", "")
            .await?;
        let sites = self
            .enrollment
            .list()
            .await
            .map_err(enroll_status)?
            .into_iter()
            .map(|listed| {
                let r = listed.record;
                Site {
                    topic_prefix: obs_common::site::topic_prefix(&r.site),
                    display_name: r.display_name,
                    location: r.location.map(|l| Location {
                        latitude_deg: l.latitude_deg,
                        longitude_deg: l.longitude_deg,
                        altitude_m: l.altitude_m,
                    }),
                    state: api_state(r.state) as i32,
                    enrolled_at: r.enrolled_at_unix_ns.map(time_from_ns),
                    revoked_at: r.revoked_at_unix_ns.map(time_from_ns),
                    certificate_not_after: r.certificate_not_after_unix_ns.map(time_from_ns),
                    mirror_segments: r.mirror_segments,
                    connected: listed.connected,
                    site: r.site,
                }
            })
            .collect();
        Ok(Response::new(ListSitesResponse { sites }))
    }
}
