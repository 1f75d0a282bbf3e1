//! The Raft transport: a tonic client per peer and the tonic service.
//!
//! Openraft's messages travel as bincode inside the protobuf envelope of
//! `proto/raft.proto`. The client side ([`Network`]) keeps one lazily
//! connected HTTP/2 channel per peer address and reuses it for every RPC; it
//! bounds each call by openraft's per-RPC deadline and reports a peer it
//! cannot reach as `Unreachable`, so openraft backs off instead of spinning.
//! The server side ([`RaftService`]) decodes each request and hands it to the
//! local `openraft::Raft`.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::RPCTypes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

use crate::pb::raft_client::RaftClient;
use crate::pb::{RaftReply, RaftRequest};
use crate::{Member, StateMachine, TypeConfig};

/// The largest message either side accepts (log batches and snapshot chunks).
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How long openraft waits before retrying an unreachable peer.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(200);

/// Creates [`Network`] clients, sharing one channel per peer address.
#[derive(Clone)]
pub struct NetworkFactory {
    id: u64,
    connect_timeout: Duration,
    /// TLS toward peers; `None`: plaintext.
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl NetworkFactory {
    /// The factory of node `id`; connections give up after
    /// `connect_timeout`, and speak TLS with `tls` when given.
    pub fn new(
        id: u64,
        connect_timeout: Duration,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> Self {
        Self {
            id,
            connect_timeout,
            tls,
            channels: Arc::default(),
        }
    }

    /// The (lazily connected) channel to `addr`, created on first use.
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = match &self.tls {
            // The connector dials TLS under tonic's plain `http://`.
            Some(config) => {
                endpoint.connect_with_connector_lazy(crate::tls::connector(addr, config.clone()))
            }
            None => endpoint.connect_lazy(),
        };
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    pub(crate) fn client(
        &self,
        addr: &str,
    ) -> Result<RaftClient<Channel>, tonic::transport::Error> {
        Ok(RaftClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

impl<S: StateMachine> RaftNetworkFactory<TypeConfig<S>> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: u64, node: &Member) -> Network {
        Network {
            id: self.id,
            target,
            node: node.clone(),
            client: self.client(&node.raft_addr).map_err(|e| e.to_string()),
        }
    }
}

/// The client of one peer.
pub struct Network {
    id: u64,
    target: u64,
    node: Member,
    /// The error when the peer's address is not a valid URI.
    client: Result<RaftClient<Channel>, String>,
}

impl Network {
    /// Sends one request and decodes the reply: a remote Raft error comes
    /// back as `RemoteError`, a transport failure as `Unreachable`.
    async fn call<Req, Resp, E>(
        &mut self,
        action: RPCTypes,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<u64, Member, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: StdError + DeserializeOwned,
    {
        let mut client = match &self.client {
            Ok(client) => client.clone(),
            Err(e) => {
                return Err(RPCError::Unreachable(Unreachable::new(&StringError(
                    e.clone(),
                ))))
            }
        };
        let data =
            bincode::serialize(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let request = RaftRequest { data };
        let call = async move {
            match action {
                RPCTypes::AppendEntries => client.append_entries(request).await,
                RPCTypes::Vote => client.vote(request).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        let reply = match tokio::time::timeout(timeout, call).await {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.id,
                    target: self.target,
                    timeout,
                }))
            }
            Ok(Err(status)) => return Err(status_error(status)),
            Ok(Ok(reply)) => reply.into_inner(),
        };
        if reply.error.is_empty() {
            bincode::deserialize(&reply.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))
        } else {
            let remote: RaftError<u64, E> = bincode::deserialize(&reply.data)
                .map_err(|_| RPCError::Network(NetworkError::new(&StringError(reply.error))))?;
            Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                remote,
            )))
        }
    }
}

/// A transport failure. A refused request (bad payload) is a network error
/// worth retrying at once; anything else means the peer is not there.
fn status_error<E: StdError>(status: Status) -> RPCError<u64, Member, E> {
    match status.code() {
        Code::InvalidArgument | Code::Internal | Code::Unimplemented => {
            RPCError::Network(NetworkError::new(&status))
        }
        _ => RPCError::Unreachable(Unreachable::new(&status)),
    }
}

#[derive(Debug)]
struct StringError(String);

impl std::fmt::Display for StringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for StringError {}

impl<S: StateMachine> RaftNetwork<TypeConfig<S>> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig<S>>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        self.call(RPCTypes::AppendEntries, &rpc, option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig<S>>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, Member, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(RPCTypes::InstallSnapshot, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        self.call(RPCTypes::Vote, &rpc, option.hard_ttl()).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }
}

/// The tonic service: decodes each request and hands it to the local Raft.
pub struct RaftService<S: StateMachine> {
    raft: openraft::Raft<TypeConfig<S>>,
}

impl<S: StateMachine> RaftService<S> {
    /// The service of `raft`.
    pub fn new(raft: openraft::Raft<TypeConfig<S>>) -> Self {
        Self { raft }
    }
}

// `Status` is what tonic's service methods answer; boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn decode_request<T: DeserializeOwned>(request: Request<RaftRequest>) -> Result<T, Status> {
    bincode::deserialize(&request.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable request: {e}")))
}

/// The reply envelope: the bincode of the answer, or of the Raft error with
/// its text in `error`.
#[allow(clippy::result_large_err)]
fn reply<T: Serialize, E: Serialize + std::fmt::Display>(
    result: Result<T, E>,
) -> Result<Response<RaftReply>, Status> {
    let encoded = match &result {
        Ok(answer) => bincode::serialize(answer),
        Err(error) => bincode::serialize(error),
    };
    let data = encoded.map_err(|e| Status::internal(format!("unencodable reply: {e}")))?;
    let error = match result {
        Ok(_) => String::new(),
        Err(e) => {
            let text = e.to_string();
            if text.is_empty() {
                "error".to_string()
            } else {
                text
            }
        }
    };
    Ok(Response::new(RaftReply { data, error }))
}

#[tonic::async_trait]
impl<S: StateMachine> crate::pb::raft_server::Raft for RaftService<S> {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let rpc = decode_request(request)?;
        reply(self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc = decode_request(request)?;
        reply(self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let rpc = decode_request(request)?;
        reply(self.raft.install_snapshot(rpc).await)
    }

    async fn forward(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let command: S::Command = decode_request(request)?;
        reply(self.raft.client_write(vec![command]).await.map(|r| r.data))
    }
}
