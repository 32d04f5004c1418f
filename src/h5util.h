// h5util.h: small HDF5 helpers shared by the writers (dump and results files).
#ifndef SKEL_H5UTIL_H
#define SKEL_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

// Scalar attributes on obj, replacing an existing one of that name: int64, float64, and a
// fixed-length NUL-terminated string (readable by h5py as bytes/str and by h5dump).
void h5_attr_put_i64(hid_t obj, const char *name, int64_t v);
void h5_attr_put_f64(hid_t obj, const char *name, double v);
void h5_attr_put_str(hid_t obj, const char *name, const char *s);

#endif
