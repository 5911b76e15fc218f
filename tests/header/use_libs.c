/* Compiled by check.sh like use_header.c: weft_http.h and weft_tls.h (the headers of the
 * libraries beside libweft, lib/) stand alone too, in either order. */
#include <weft_http.h>
#include <weft_tls.h>

int weft_use_libs(weft_http_pool *p, weft_tls_ctx *ctx);

int weft_use_libs(weft_http_pool *p, weft_tls_ctx *ctx)
{
    weft_http_response resp;
    resp.location[0] = '\0';
    return weft_http_pool_set_tls(p, ctx) + resp.location[0];
}
