//! Starts a real actix server on 127.0.0.1 port 0: the service under test, a stand-in upstream,
//! a callback receiver. Stops when the returned handle is dropped.

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, Error, HttpServer};

/// A server started by [`serve`]; stops when dropped.
#[derive(Debug)]
pub struct RunningServer {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// The bound port.
    pub port: u16,
    handle: ServerHandle,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// Serves the apps `factory` builds with `workers` workers on a free port.
pub fn serve<F, T, B>(workers: usize, factory: F) -> RunningServer
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    let listener = crate::local_listener();
    let port = listener.local_addr().expect("local addr").port();
    let server =
        HttpServer::new(factory).workers(workers).disable_signals().listen(listener).expect("listen").run();
    let handle = server.handle();
    tokio::spawn(server);
    RunningServer { url: format!("http://127.0.0.1:{port}"), port, handle }
}
