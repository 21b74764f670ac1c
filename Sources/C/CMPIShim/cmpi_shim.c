// CMPIShim: see include/cmpi_shim.h for the contract.
#include "cmpi_shim.h"
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static MPI_Comm *as_comm(void *c) { return (MPI_Comm *)c; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/// Back-off while waiting `waited` seconds: spin for 50 us (a peer that is about to arrive), then
/// yield the core until 1 ms, then sleep 50 us between tests, so a rank waiting for a slow stage
/// does not take the core the stage needs (ranks may outnumber cores: mpirun --oversubscribe).
static void back_off(double waited) {
    if (waited < 50e-6) return;
    if (waited < 1e-3) { sched_yield(); return; }
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
}

/// Poll `req` until done or `timeout_s` has passed.
static int wait_for(MPI_Request *req, MPI_Status *st, double timeout_s) {
    double start = now_s();
    int done = 0;
    for (;;) {
        int rc = MPI_Test(req, &done, st);
        if (rc != MPI_SUCCESS) return rc;
        if (done) return MPI_SUCCESS;
        double waited = now_s() - start;
        if (waited > timeout_s) return TMPI_ERR_TIMEOUT;
        back_off(waited);
    }
}

int tmpi_init(void) {
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

int tmpi_initialized(void) {
    int flag = 0, fin = 0;
    MPI_Initialized(&flag);
    MPI_Finalized(&fin);
    return flag && !fin;
}

int tmpi_finalize(void) { return MPI_Finalize(); }

void tmpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

int tmpi_world_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
int tmpi_world_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }

int tmpi_tag_ub(void) {
    int *v = NULL, flag = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &v, &flag);
    return flag && v ? *v : 32767;
}

int tmpi_comm_world(void **out) {
    MPI_Comm *c = malloc(sizeof(MPI_Comm));
    if (!c) return MPI_ERR_NO_MEM;
    *c = MPI_COMM_WORLD;
    *out = c;
    return MPI_SUCCESS;
}

int tmpi_comm_split(void *comm, int color, int key, void **out) {
    MPI_Comm *c = malloc(sizeof(MPI_Comm));
    if (!c) return MPI_ERR_NO_MEM;
    int rc = MPI_Comm_split(*as_comm(comm), color, key, c);
    if (rc != MPI_SUCCESS) { free(c); return rc; }
    MPI_Comm_set_errhandler(*c, MPI_ERRORS_RETURN);
    *out = c;
    return MPI_SUCCESS;
}

int tmpi_comm_free(void *comm) {
    MPI_Comm *c = as_comm(comm);
    int rc = MPI_SUCCESS;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin && *c != MPI_COMM_WORLD && *c != MPI_COMM_NULL) rc = MPI_Comm_free(c);
    free(c);
    return rc;
}

int tmpi_comm_rank(void *comm, int *rank) { return MPI_Comm_rank(*as_comm(comm), rank); }
int tmpi_comm_size(void *comm, int *size) { return MPI_Comm_size(*as_comm(comm), size); }

int tmpi_allgather_f32(void *comm, const float *send, int n, float *recv, double timeout_s) {
    MPI_Request req;
    int rc = MPI_Iallgather(send, n, MPI_FLOAT, recv, n, MPI_FLOAT, *as_comm(comm), &req);
    if (rc != MPI_SUCCESS) return rc;
    return wait_for(&req, MPI_STATUS_IGNORE, timeout_s);
}

int tmpi_bcast_f32(void *comm, float *buf, int n, int root, double timeout_s) {
    MPI_Request req;
    int rc = MPI_Ibcast(buf, n, MPI_FLOAT, root, *as_comm(comm), &req);
    if (rc != MPI_SUCCESS) return rc;
    return wait_for(&req, MPI_STATUS_IGNORE, timeout_s);
}

int tmpi_send_f32(void *comm, const float *buf, int n, int dest, int tag, double timeout_s) {
    MPI_Request req;
    int rc = MPI_Isend(buf, n, MPI_FLOAT, dest, tag, *as_comm(comm), &req);
    if (rc != MPI_SUCCESS) return rc;
    return wait_for(&req, MPI_STATUS_IGNORE, timeout_s);
}

int tmpi_recv_f32(void *comm, float *buf, int n, int src, int tag, int *received, double timeout_s) {
    // Probe first so a message of the wrong size is reported, not silently truncated.
    double start = now_s();
    MPI_Status st;
    int flag = 0;
    for (;;) {
        int rc = MPI_Iprobe(src, tag, *as_comm(comm), &flag, &st);
        if (rc != MPI_SUCCESS) return rc;
        if (flag) break;
        double waited = now_s() - start;
        if (waited > timeout_s) return TMPI_ERR_TIMEOUT;
        back_off(waited);
    }
    int count = 0;
    MPI_Get_count(&st, MPI_FLOAT, &count);
    *received = count;
    if (count != n) return TMPI_ERR_TRUNCATE;
    return MPI_Recv(buf, n, MPI_FLOAT, src, tag, *as_comm(comm), MPI_STATUS_IGNORE);
}

int tmpi_barrier(void *comm, double timeout_s) {
    MPI_Request req;
    int rc = MPI_Ibarrier(*as_comm(comm), &req);
    if (rc != MPI_SUCCESS) return rc;
    return wait_for(&req, MPI_STATUS_IGNORE, timeout_s);
}

void tmpi_error_string(int code, char *buf, int len) {
    if (len <= 0) return;
    if (code == TMPI_ERR_TIMEOUT) { snprintf(buf, len, "timed out"); return; }
    if (code == TMPI_ERR_TRUNCATE) { snprintf(buf, len, "message size differs from the receive buffer"); return; }
    int n = 0;
    char tmp[MPI_MAX_ERROR_STRING];
    if (MPI_Error_string(code, tmp, &n) != MPI_SUCCESS) snprintf(buf, len, "MPI error %d", code);
    else snprintf(buf, len, "%s", tmp);
}

int tmpi_isend_f32(void *comm, const float *buf, int n, int dest, int tag, void **request) {
    MPI_Request *req = malloc(sizeof(MPI_Request));
    if (!req) return MPI_ERR_NO_MEM;
    int rc = MPI_Isend(buf, n, MPI_FLOAT, dest, tag, *as_comm(comm), req);
    if (rc != MPI_SUCCESS) { free(req); return rc; }
    *request = req;
    return MPI_SUCCESS;
}

int tmpi_wait_request(void *request, double timeout_s) {
    MPI_Request *req = (MPI_Request *)request;
    int rc = wait_for(req, MPI_STATUS_IGNORE, timeout_s);
    if (rc == MPI_SUCCESS) free(req);
    return rc;
}
