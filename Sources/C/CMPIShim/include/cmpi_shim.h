// CMPIShim: the few MPI calls Turing needs, as plain C functions Swift can import.
//
// MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, ...) are macros Swift cannot see, so communicators
// cross this boundary as opaque pointers to a heap-allocated MPI_Comm. Every function returns an
// MPI error code (0 = MPI_SUCCESS; errors are returned, never fatal: MPI_ERRORS_RETURN is set on
// the world communicator). Blocking operations are issued non-blocking and polled until
// `timeout_s` seconds have passed; TMPI_ERR_TIMEOUT is then returned (the request is left pending:
// the caller is expected to abort the job).
#ifndef CMPI_SHIM_H
#define CMPI_SHIM_H

#define TMPI_ERR_TIMEOUT (-1)
#define TMPI_ERR_TRUNCATE (-2)

int tmpi_init(void);
int tmpi_initialized(void);
int tmpi_finalize(void);
void tmpi_abort(int code);
int tmpi_world_rank(void);
int tmpi_world_size(void);
/// Maximum tag value (at least 32767).
int tmpi_tag_ub(void);
/// A handle to MPI_COMM_WORLD (free with tmpi_comm_free).
int tmpi_comm_world(void **out);
/// MPI_Comm_split of `comm`; *out is a new handle.
int tmpi_comm_split(void *comm, int color, int key, void **out);
int tmpi_comm_free(void *comm);
int tmpi_comm_rank(void *comm, int *rank);
int tmpi_comm_size(void *comm, int *size);

int tmpi_allgather_f32(void *comm, const float *send, int n, float *recv, double timeout_s);
int tmpi_bcast_f32(void *comm, float *buf, int n, int root, double timeout_s);
int tmpi_send_f32(void *comm, const float *buf, int n, int dest, int tag, double timeout_s);
/// Receives exactly n floats; TMPI_ERR_TRUNCATE (with *received set) when the message size differs.
int tmpi_recv_f32(void *comm, float *buf, int n, int src, int tag, int *received, double timeout_s);
int tmpi_barrier(void *comm, double timeout_s);
/// Start a send; `*request` is waited on (and freed) by tmpi_wait_request. `buf` must stay valid until then.
int tmpi_isend_f32(void *comm, const float *buf, int n, int dest, int tag, void **request);
int tmpi_wait_request(void *request, double timeout_s);
/// MPI's text for an error code (or the shim's own codes) into buf.
void tmpi_error_string(int code, char *buf, int len);

#endif
