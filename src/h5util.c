#include "h5util.h"

#include <string.h>

static void put(hid_t obj, const char *name, hid_t ft, hid_t mt, const void *v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, mt, v);
    H5Aclose(a);
    H5Sclose(sp);
}

void h5_attr_put_i64(hid_t obj, const char *name, int64_t v) {
    long long x = v;
    put(obj, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &x);
}

void h5_attr_put_f64(hid_t obj, const char *name, double v) { put(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v); }

void h5_attr_put_str(hid_t obj, const char *name, const char *s) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(s) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    put(obj, name, t, t, s);
    H5Tclose(t);
}
