/* grantctl's tables, as text or JSON. Each returns the exit status. */
#ifndef GRANTCTL_SHOW_H
#define GRANTCTL_SHOW_H

#include <stdbool.h>

int show_domains(bool json);
int show_grants(bool json);
int show_ports(bool json);

#endif
